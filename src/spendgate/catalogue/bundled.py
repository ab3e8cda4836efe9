"""Load the price catalogue that ships inside the package. Never downloads anything."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from spendgate.core.pricing.catalogue import Catalogue

__all__ = ["bundled_catalogue", "load_catalogue_file"]


def _loads(raw: bytes) -> Any:
    import orjson  # rates are decimal strings in the file, so no float ever appears

    return orjson.loads(raw)


@functools.cache
def bundled_catalogue() -> Catalogue:
    """The bundled catalogue, parsed once per process on first use."""
    raw = resources.files("spendgate.catalogue").joinpath("data/catalogue.json").read_bytes()
    return Catalogue.from_dict(_loads(raw), name="bundled", lazy=True)


def load_catalogue_file(path: str | Path, *, name: str | None = None) -> Catalogue:
    """Load an operator's price file: spendgate's format, or LiteLLM's (converted).

    The layer is named ``operator:<file name>`` unless ``name`` is given.
    """
    p = Path(path)
    data = _loads(p.read_bytes())
    layer_name = name or f"operator:{p.name}"
    if isinstance(data, dict) and data.get("format") is None:
        from spendgate.catalogue.litellm_format import litellm_to_catalogue

        data = litellm_to_catalogue(data, name=layer_name, version=p.stem, prices_checked=None)
    return Catalogue.from_dict(data, name=layer_name)

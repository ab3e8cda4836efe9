"""A versioned set of model prices and the rules that find a model in it.

:class:`Catalogue` is one layer of prices (the bundled file, an operator's file, one
deployment's prices). :class:`PriceBook` stacks layers, lowest first, and resolves a
model name through all of them: the lowest layer that knows the model gives the base
spec, each higher layer that knows it overlays its declared rates. The result names the
catalogue version and every price source that contributed.

Name resolution, in order: the name with the caller's provider (``openai`` +
``gpt-4o`` → ``openai/gpt-4o``); the exact id or alias; a known provider prefix
(``azure/…``, ``bedrock/…``, ``vertex_ai/…``) mapped to its canonical provider, then the
bare model; then the same with a dated snapshot suffix removed
(``gpt-4o-2024-08-06`` → ``gpt-4o``, ``claude-3-5-sonnet@20240620``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from spendgate.core.pricing.spec import (
    CatalogueFormatError,
    ModelEntry,
    PriceSpec,
    entry_from_dict,
    entry_to_dict,
)

__all__ = [
    "CATALOGUE_FORMAT",
    "PROVIDER_ALIASES",
    "Catalogue",
    "PriceBook",
    "ResolvedPrice",
    "canonical_provider",
]

CATALOGUE_FORMAT = "spendgate-catalogue/1"

# Spellings users and LiteLLM use for a provider → the catalogue's provider id.
PROVIDER_ALIASES: Mapping[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "azure_ai": "azure_ai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "google": "gemini",
    "google_ai_studio": "gemini",
    "vertex_ai": "vertex_ai",
    "vertex": "vertex_ai",
    "vertex_ai_beta": "vertex_ai",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "aws": "bedrock",
    "mistral": "mistral",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "xai": "xai",
    "groq": "groq",
    "together_ai": "together_ai",
    "together": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "fireworks": "fireworks_ai",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
}

_SNAPSHOT = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}))$|(?:-latest)$")


def canonical_provider(name: str) -> str:
    """The catalogue's provider id for a user's or LiteLLM's spelling of it."""
    key = name.strip().lower()
    return PROVIDER_ALIASES.get(key, key)


class Catalogue:
    """One layer of model prices, indexed by id and alias.

    Built from parsed entries, or lazily from raw JSON entries (:meth:`from_dict` with
    ``lazy=True``): then only the name index is built up front and an entry is parsed
    and validated the first time it is looked up, so loading thousands of models costs
    milliseconds.
    """

    def __init__(
        self,
        entries: Iterable[ModelEntry],
        *,
        version: str,
        name: str = "bundled",
        prices_checked: str | None = None,
    ) -> None:
        self.version = version
        self.name = name
        self.prices_checked = prices_checked
        self._by_id: dict[str, ModelEntry] = {e.id: e for e in entries}
        self._raw: dict[str, tuple[int, Mapping[str, Any]]] = {}
        self._index({eid: e.aliases for eid, e in self._by_id.items()})

    def _index(self, aliases_by_id: Mapping[str, Iterable[str]]) -> None:
        # Ids first so an alias can never shadow a canonical id; the first alias wins.
        self._by_name: dict[str, str] = {eid.lower(): eid for eid in aliases_by_id}
        for eid, aliases in aliases_by_id.items():
            for alias in aliases:
                self._by_name.setdefault(alias.lower(), eid)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "bundled", lazy: bool = False) -> Catalogue:
        """Build a catalogue from its JSON form (``{"format", "version", "models": [...]}``).

        With ``lazy=False`` every entry is validated now (use it for operator files, so
        a mistake is reported at start-up); ``lazy=True`` defers parsing to first use.
        """
        fmt = data.get("format")
        if fmt != CATALOGUE_FORMAT:
            raise CatalogueFormatError(f"format: expected {CATALOGUE_FORMAT!r}, got {fmt!r}")
        models = data.get("models")
        if not isinstance(models, list):
            raise CatalogueFormatError("models: expected a list")
        version = str(data.get("version", "unversioned"))
        checked = data.get("prices_checked")
        if not lazy:
            entries = [entry_from_dict(m, f"models[{i}]") for i, m in enumerate(models)]
            return cls(entries, version=version, name=name, prices_checked=checked)
        cat = cls((), version=version, name=name, prices_checked=checked)
        aliases: dict[str, Iterable[str]] = {}
        raw = cat._raw
        for i, m in enumerate(models):
            if m.__class__ is not dict or "provider" not in m or "model" not in m:
                entry_from_dict(m, f"models[{i}]")  # raises the precise error
            eid = m.get("id") or f"{m['provider']}/{m['model']}"
            raw[eid] = (i, m)
            aliases[eid] = m.get("aliases", ())
        cat._index(aliases)
        return cat

    def _entry(self, entry_id: str) -> ModelEntry | None:
        entry = self._by_id.get(entry_id)
        if entry is None:
            raw = self._raw.get(entry_id)
            if raw is None:
                return None
            entry = self._by_id[entry_id] = entry_from_dict(raw[1], f"models[{raw[0]}]")
        return entry

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CATALOGUE_FORMAT,
            "version": self.version,
            "prices_checked": self.prices_checked,
            "models": [entry_to_dict(e) for e in self],
        }

    def __len__(self) -> int:
        return len(self._by_id.keys() | self._raw.keys())

    def __iter__(self) -> Iterator[ModelEntry]:
        """Every entry (parsing any not parsed yet), in file order."""
        ids = list(self._by_id) + [eid for eid in self._raw if eid not in self._by_id]
        for eid in ids:
            entry = self._entry(eid)
            if entry is not None:
                yield entry

    def get(self, entry_id: str) -> ModelEntry | None:
        return self._entry(entry_id)

    def find(self, model: str, provider: str | None = None) -> ModelEntry | None:
        """Find a model by the resolution rules of the module docstring."""
        for candidate in _candidates(model, provider):
            entry_id = self._by_name.get(candidate)
            if entry_id is not None:
                return self._entry(entry_id)
        return None

    def search(self, text: str, limit: int = 50) -> list[ModelEntry]:
        """Entries whose id or an alias contains ``text`` (case-insensitive)."""
        needle = text.lower()
        ids = {eid for name, eid in self._by_name.items() if needle in name}
        hits = [e for e in map(self._entry, ids) if e is not None]
        hits.sort(key=lambda e: (len(e.id), e.id))
        return hits[:limit]


def _candidates(model: str, provider: str | None) -> Iterator[str]:
    name = model.strip().lower()
    prov = canonical_provider(provider) if provider else None
    seen: set[str] = set()

    def variants(n: str) -> Iterator[str]:
        if prov:
            yield f"{prov}/{n}"
        yield n
        head, sep, rest = n.partition("/")
        if sep and head in PROVIDER_ALIASES:
            yield f"{PROVIDER_ALIASES[head]}/{rest}"
            yield rest

    for base in (name, _SNAPSHOT.sub("", name)):
        for v in variants(base):
            if v not in seen:
                seen.add(v)
                yield v
        # A snapshot suffix may also hide behind a provider prefix: azure/gpt-4o-2024-08-06.
        _, sep, rest = base.partition("/")
        if sep:
            stripped = _SNAPSHOT.sub("", rest)
            if stripped != rest:
                for v in variants(f"{base.partition('/')[0]}/{stripped}"):
                    if v not in seen:
                        seen.add(v)
                        yield v


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """The spec a call is priced with, and where it came from."""

    entry: ModelEntry
    spec: PriceSpec
    catalogue_version: str
    source: str
    """Layer names that contributed, lowest first, e.g. ``"bundled+operator"``."""


class PriceBook:
    """Layers of catalogues, lowest first: bundled < operator file < deployment < scope."""

    def __init__(self, layers: Iterable[Catalogue]) -> None:
        self.layers: tuple[Catalogue, ...] = tuple(layers)
        if not self.layers:
            raise ValueError("a PriceBook needs at least one catalogue")
        self._found: dict[tuple[str, str | None], tuple[tuple[Catalogue, ModelEntry], ...]] = {}
        self._static: dict[tuple[str, str | None], ResolvedPrice] = {}

    @property
    def version(self) -> str:
        return "+".join(layer.version for layer in self.layers)

    def with_layer(self, layer: Catalogue) -> PriceBook:
        """A new book with ``layer`` on top."""
        return PriceBook((*self.layers, layer))

    def find(self, model: str, provider: str | None = None) -> ModelEntry | None:
        for layer in reversed(self.layers):
            entry = layer.find(model, provider)
            if entry is not None:
                return entry
        return None

    def resolve(
        self, model: str, provider: str | None = None, at: datetime | None = None
    ) -> ResolvedPrice | None:
        """The spec in force for ``model`` at ``at``, all layers applied; None if unpriced."""
        key = (model, provider)
        static = self._static.get(key)
        if static is not None:
            return static
        found = self._found.get(key)
        if found is None:
            found = self._find_in_layers(model, provider)
            if len(self._found) < 65536:  # bounded: names come from requests
                self._found[key] = found
        if not found:
            return None
        specs = []
        for layer, entry in found:
            spec = entry.spec_at(at)
            if spec is not None:
                specs.append((layer, entry, spec))
        if not specs:
            return None
        if len(specs) == 1:
            layer, entry, spec = specs[0]
            resolved = ResolvedPrice(entry, spec, self.layers[0].version, layer.name)
        else:
            resolved = _merge(tuple(specs), self.layers[0].version)
        if all(len(e.prices) == 1 and e.prices[0].effective_from is None for _, e in found):
            # No price history anywhere: the answer does not depend on the time.
            if len(self._static) < 65536:
                self._static[key] = resolved
        return resolved

    def resolve_static(self, model: str, provider: str | None = None) -> ResolvedPrice | None:
        """The resolution of ``model`` when it holds at every moment (no layer has price
        history for it), else None; cached, so callers may cache what they derive from it."""
        key = (model, provider)
        static = self._static.get(key)
        if static is None and key not in self._found:
            self.resolve(model, provider)
            static = self._static.get(key)
        return static

    def _find_in_layers(self, model: str, provider: str | None) -> tuple[tuple[Catalogue, ModelEntry], ...]:
        found: list[tuple[Catalogue, ModelEntry]] = []
        for layer in self.layers:
            entry = layer.find(model, provider)
            if entry is None and found:
                # An override layer may name the model by the id the lower layer resolved to.
                base = found[0][1]
                entry = layer.get(base.id) or layer.find(base.model, base.provider)
            if entry is not None:
                found.append((layer, entry))
        return tuple(found)


@functools.lru_cache(maxsize=4096)
def _merge(
    specs: tuple[tuple[Catalogue, ModelEntry, PriceSpec], ...], catalogue_version: str
) -> ResolvedPrice:
    """Overlay the specs of several layers, lowest first (cached: specs hash by identity)."""
    _, entry, spec = specs[0]
    for _, top_entry, top in specs[1:]:
        spec = spec.overlay(top)
        # Limits declared by an override win; the identity stays the base's.
        if top_entry.max_output_tokens is not None or top_entry.max_input_tokens is not None:
            entry = replace(
                entry,
                max_input_tokens=top_entry.max_input_tokens or entry.max_input_tokens,
                max_output_tokens=top_entry.max_output_tokens or entry.max_output_tokens,
            )
        if top_entry.free and not entry.free:
            entry = replace(entry, free=True)  # an override that declares the model free
    return ResolvedPrice(entry, spec, catalogue_version, "+".join(layer.name for layer, _, _ in specs))

"""A spendgate price spec under LiteLLM's field names (the other direction of
:mod:`~spendgate.catalogue.litellm_model`). Pure: no I/O.

What LiteLLM's ``/model/info`` shows per model: flat ``*_cost_*`` fields in USD per unit.
:func:`litellm_price_fields` writes them from a :class:`~spendgate.core.pricing.spec.PriceSpec`
as exact :class:`~decimal.Decimal` values:

* every flat rate of the standard tier, at the smallest prompt (the first range tier when
  the model has range tiers), under the key of :data:`LITELLM_RATE_KEYS`
  (``input`` → ``input_cost_per_token``, ``cache_read`` → ``cache_read_input_token_cost`` …);
* the input and output rates billed in ``batch`` (``…_batches``; half the standard rates
  when the model declares none, as the calculator bills them), and the input, output and
  cache-read rates of each service tier the model declares (``…_flex``, ``…_priority``);
* each long-context threshold's declared token rates (``…_above_200k_tokens``);
* web-search prices as LiteLLM's ``search_context_cost_per_query`` object.

A rate the spec does not declare is absent (never a made-up 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from spendgate.catalogue.litellm_model import LITELLM_RATE_KEYS
from spendgate.core.pricing.spec import PriceSpec, Rates
from spendgate.core.pricing.table import cell

__all__ = ["LITELLM_RATE_KEYS", "litellm_price_fields"]

_KEY_OF: Mapping[str, str] = MappingProxyType({rate: key for key, rate in LITELLM_RATE_KEYS.items()})
"""spendgate rate name → LiteLLM key."""
_TIER_SUFFIX: Mapping[str, str] = MappingProxyType(
    {"batch": "batches", "flex": "flex", "priority": "priority"}
)
_TIER_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "batch": ("input", "output"),
        "flex": ("input", "output", "cache_read"),
        "priority": ("input", "output", "cache_read"),
    }
)
"""The rates shown per service tier (the suffixed keys LiteLLM's own price file uses)."""
_THRESHOLD_KINDS = ("input", "output", "cache_read", "cache_write")


def litellm_price_fields(spec: PriceSpec) -> dict[str, Decimal | dict[str, Decimal]]:
    """The LiteLLM price fields of ``spec`` (see the module docstring), exact.

    Args:
        spec: the spec in force (all override layers already applied).

    Returns:
        LiteLLM key → USD per unit; ``search_context_cost_per_query`` → an object.
    """
    first = 0 if spec.tiers else -1
    standard = cell(spec, None, first, None, False).rates
    out: dict[str, Decimal | dict[str, Decimal]] = {}
    _put(out, standard, "", tuple(_KEY_OF))
    for tier in ("batch", *sorted(set(spec.service_tiers) - {"batch"})):
        _put(out, cell(spec, tier, first, None, False).rates, f"_{_TIER_SUFFIX[tier]}", _TIER_KINDS[tier])
    for threshold in spec.thresholds:
        _put(out, threshold.rates, f"_above_{_tokens(threshold.above)}_tokens", _THRESHOLD_KINDS)
    if standard.web_search:
        out["search_context_cost_per_query"] = {
            f"search_context_size_{size}": rate for size, rate in sorted(standard.web_search.items())
        }
    return out


def _put(
    out: dict[str, Decimal | dict[str, Decimal]], rates: Rates, suffix: str, kinds: tuple[str, ...]
) -> None:
    for kind in kinds:
        value = getattr(rates, kind)
        if value is not None:
            out[f"{_KEY_OF[kind]}{suffix}"] = value


def _tokens(above: int) -> str:
    """LiteLLM's threshold spelling: ``200k`` for 200,000, else the count."""
    return f"{above // 1000}k" if above % 1000 == 0 else str(above)

"""Convert LiteLLM's price JSON into spendgate catalogue entries. Pure: no I/O.

LiteLLM keeps prices in ``model_prices_and_context_window.json``: one object per model
key, with flat ``*_cost_*`` fields whose suffixes encode structure. This module reads that
dict and returns spendgate entry dicts (the shape :func:`~spendgate.core.pricing.spec.
entry_to_dict` writes), mapping each LiteLLM key *as declared*; the fallbacks LiteLLM
applies at cost time (a missing batch cache-read rate, a tier without a cache rate, …)
are the calculator's job, so nothing is pre-computed here.

How keys map:

* ``input_cost_per_token`` → ``input`` and the rest of :data:`LITELLM_RATE_KEYS`;
  ``input_cost_per_token_cache_hit`` (DeepSeek's old name) → ``cache_read`` when there is
  no ``cache_read_input_token_cost``.
* ``<key>_above_<N|Nk>_tokens`` → a long-context threshold ``above=N``.
* ``<key>_batches`` / ``_flex`` / ``_priority`` → ``service_tiers.batch`` / ``flex`` /
  ``priority`` (a threshold key may carry the suffix too); ``_balanced``, ``_ultrafast``
  and ``_decisions`` have no spendgate tier and are reported as unmapped.
* ``search_context_cost_per_query`` → ``web_search``; ``tiered_pricing`` → ``tiers``;
  ``off_peak_pricing`` → ``off_peak``.
* ``output_cost_per_image_<variant>`` and size-prefixed image keys
  (``hd/1024-x-1792/dall-e-3``, ``azure/low/1024-x-1024/gpt-image-1``) → the base
  model's ``image_variants`` (``"hd/1024x1792"``); a pixel price becomes a per-image
  price, ``rate × width × height``, exactly.
* Of the capability fields only ``mode``, ``max_input_tokens`` and ``max_output_tokens``
  (or ``max_tokens``) are kept.
* An entry whose every price is zero (``ollama/…``, OpenRouter's ``…:free``) is how the
  format writes a free model: it becomes ``free: true``. Any other zero rate stays a zero
  rate, which the calculator treats as a missing price (unpriced, never $0).

Every cost field that is not mapped is counted in a :class:`ConversionReport`, so nothing
is lost silently. A value that is not a price raises
:class:`~spendgate.core.pricing.spec.CatalogueFormatError` naming the model key and field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from spendgate.catalogue.litellm_model import (
    LITELLM_RATE_KEYS,
    ConversionReport,
    Draft,
    Variant,
    convert_model,
    image_variant,
    is_cost_field,
    litellm_provider_id,
    provider_of,
    variant_parts,
)
from spendgate.core.pricing.catalogue import CATALOGUE_FORMAT
from spendgate.core.pricing.spec import CatalogueFormatError, entry_from_dict, entry_to_dict, prices_nothing

__all__ = [
    "BARE_NAME_PROVIDERS",
    "LITELLM_RATE_KEYS",
    "ConversionReport",
    "litellm_provider_id",
    "litellm_to_catalogue",
    "litellm_to_entries",
]

# First-party providers whose users name models bare ("grok-4", "mistral-large-latest"):
# their entries also answer to the bare name when no other entry or LiteLLM key claims it.
BARE_NAME_PROVIDERS = frozenset(
    {"openai", "anthropic", "gemini", "mistral", "deepseek", "xai", "cohere", "perplexity"}
)
_NOT_MODELS = frozenset({"sample_spec"})


# --------------------------------------------------------------------------- whole file


def _price_key(draft: Draft) -> str:
    spec = {k: v for k, v in draft.spec.items() if k != "source"}
    return json.dumps(spec, sort_keys=True, default=lambda d: f"{d.normalize():E}")


def _name_entries(drafts: list[Draft], report: ConversionReport) -> list[dict[str, Any]]:
    """Entries from drafts: one per id; keys that collide share it only if priced alike."""
    by_id: dict[str, list[Draft]] = {}
    for draft in drafts:
        by_id.setdefault(draft.id.lower(), []).append(draft)
    entries: dict[str, dict[str, Any]] = {}
    for group in by_id.values():
        # The key spelled like the id leads; then the shortest, then alphabetical.
        group.sort(key=lambda d: (d.key.lower() != d.id.lower(), len(d.key), d.key))
        by_price: dict[str, list[Draft]] = {}
        for draft in group:
            by_price.setdefault(_price_key(draft), []).append(draft)
        for n, same in enumerate(by_price.values()):
            lead = same[0]
            entry_id = lead.id if n == 0 else lead.key
            if n:
                report.collisions.append(
                    f"{', '.join(d.key for d in same)} priced unlike {group[0].key}: id {entry_id!r}"
                )
            while entry_id in entries:
                entry_id += "~"
            entries[entry_id] = lead.entry(entry_id, [d.key for d in same])
    return list(entries.values())


def _fold_variants(
    entries: list[dict[str, Any]], variants: list[Variant], source: str, report: ConversionReport
) -> list[dict[str, Any]]:
    by_id = {e["id"].lower(): e for e in entries}
    for v in sorted(variants, key=lambda v: v.key):
        entry = by_id.get(v.base_id.lower())
        if entry is None:
            spec: dict[str, Any] = {"rates": {}}
            if source:
                spec["source"] = source
            entry = {"id": v.base_id, "provider": v.provider, "model": v.model, "mode": v.mode}
            entry["prices"] = [spec]
            by_id[v.base_id.lower()] = entry
            entries.append(entry)
        image_variants = entry["prices"][-1]["rates"].setdefault("image_variants", {})
        if image_variants.get(v.name, v.price) != v.price:
            report.collisions.append(f"{v.key}: image variant {v.name!r} of {entry['id']} already priced")
            continue
        image_variants[v.name] = v.price
    return entries


def _add_bare_names(entries: list[dict[str, Any]], taken: set[str]) -> None:
    """Bare model names as aliases for first-party providers, where unambiguous."""
    claims: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        provider, model = entry["provider"], entry["model"]
        if provider in BARE_NAME_PROVIDERS and "/" not in model and entry["id"] == f"{provider}/{model}":
            claims.setdefault(model.lower(), []).append(entry)
    for name, claimants in claims.items():
        if len(claimants) == 1 and name not in taken:
            entry = claimants[0]
            entry["aliases"] = [*entry.get("aliases", []), entry["model"]]


def litellm_to_entries(
    data: Mapping[str, Any], *, source: str = "", report: ConversionReport | None = None
) -> list[dict[str, Any]]:
    """Convert a LiteLLM price dict to spendgate entry dicts, sorted by id.

    Accepts partial entries (only ``input_cost_per_token``, no ``litellm_provider``: the
    provider then comes from a ``provider/`` key prefix, else the entry is ``custom`` and
    its id is the key). ``source`` is stamped on every price spec. Unmapped fields are
    counted in ``report`` when one is given.
    """
    if not isinstance(data, Mapping):
        raise CatalogueFormatError("a LiteLLM price file is an object of model entries")
    report = report if report is not None else ConversionReport()
    drafts: list[Draft] = []
    variants: list[Variant] = []
    for key in sorted(data):
        raw = data[key]
        if not isinstance(key, str) or key in _NOT_MODELS:
            continue
        if not isinstance(raw, Mapping):
            raise CatalogueFormatError(f"model {key!r}: expected an object of prices")
        if not any(is_cost_field(name) and value is not None for name, value in raw.items()):
            if raw.get("litellm_provider") is not None or raw.get("mode") is not None:
                report.unpriced += 1  # else not a model: LiteLLM keeps rule tables in the file
            continue
        parts = variant_parts(key, *provider_of(key, raw))
        if parts is not None:
            if (variant := image_variant(key, raw, parts, report)) is not None:
                variants.append(variant)
        elif (draft := convert_model(key, raw, report, source)) is not None:
            drafts.append(draft)
    entries = _fold_variants(_name_entries(drafts, report), variants, source, report)
    taken = {k.lower() for k in data if isinstance(k, str)} | {e["id"].lower() for e in entries}
    _add_bare_names(entries, taken)
    out = []
    for entry in sorted(entries, key=lambda e: e["id"]):
        where = f"model {entry['id']!r}"
        try:
            parsed = entry_from_dict(entry, where=where)
            if parsed.prices and all(prices_nothing(spec) for spec in parsed.prices):
                parsed = replace(parsed, free=True)
            out.append(entry_to_dict(parsed))
        except CatalogueFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogueFormatError(f"{where}: {exc}") from None
    return out


def litellm_to_catalogue(
    data: Mapping[str, Any],
    *,
    name: str,
    version: str,
    prices_checked: str | None,
    source: str = "",
    report: ConversionReport | None = None,
) -> dict[str, Any]:
    """A whole spendgate catalogue dict (``Catalogue.from_dict`` reads it) from LiteLLM's JSON."""
    return {
        "format": CATALOGUE_FORMAT,
        "name": name,
        "version": version,
        "prices_checked": prices_checked,
        "models": litellm_to_entries(data, source=source, report=report),
    }

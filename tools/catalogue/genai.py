"""Read genai-prices' bundled data (``genai_prices/data.py``) without importing the package.

The file is generated Python: one ``providers = [Provider(...), ...]`` literal made of
constructor calls, ``Decimal('…')`` and ``datetime.date(…)``. :func:`load_providers`
evaluates that literal with a small whitelist evaluator over the syntax tree (no code
runs), giving plain dicts: each call becomes ``{"__type__": name, **keyword arguments}``.

Prices there are per million tokens (``*_mtok``), per thousand calls (``*_kcount``), per
million characters (``input_mchars``) or per hour of audio (``*_hours``);
:func:`price_to_spec` converts them to spendgate's per-unit JSON form: exactly, by a
power of ten, or for a per-hour price by 3600, to Decimal's 28 significant digits (exact
whenever the quotient terminates, e.g. 0.36/h = 0.0001/s).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, date, time
from decimal import Decimal
from typing import Any

__all__ = [
    "GENAI_PRICE_KEYS",
    "conditional_prices",
    "find_model",
    "load_providers",
    "matches",
    "price_to_spec",
    "price_variants",
    "tier_variants",
]

PER_HOUR = 3600
# genai-prices price key -> (spendgate rate, divisor to a per-unit price)
GENAI_PRICE_KEYS: Mapping[str, tuple[str, int]] = {
    "input_mtok": ("input", 10**6),
    "output_mtok": ("output", 10**6),
    "cache_read_mtok": ("cache_read", 10**6),
    "cache_write_mtok": ("cache_write", 10**6),
    "cache_write_1h_mtok": ("cache_write_1h", 10**6),
    "input_audio_mtok": ("input_audio", 10**6),
    "cache_audio_read_mtok": ("cache_read_audio", 10**6),
    "output_audio_mtok": ("output_audio", 10**6),
    "input_image_mtok": ("input_image", 10**6),
    "output_image_mtok": ("output_image", 10**6),
    "input_video_mtok": ("input_video", 10**6),
    "output_video_mtok": ("output_video", 10**6),
    "output_reasoning_mtok": ("reasoning", 10**6),
    "input_mchars": ("input_per_character", 10**6),
    "web_searches_kcount": ("web_search", 10**3),
    # Transcription audio, as LiteLLM's input_cost_per_second; audio_hours alone is
    # wall-clock session time (realtime). Where both are given they are one charge.
    "input_audio_hours": ("input_per_second", PER_HOUR),
    "audio_hours": ("per_second", PER_HOUR),
}
_WEB_SEARCH_SIZES = ("low", "medium", "high")
# genai-prices price variant -> spendgate service tier
_TIERS: Mapping[tuple[str, str], str] = {
    ("processing", "batch"): "batch",
    ("service_tier", "flex"): "flex",
    ("service_tier", "priority"): "priority",
}


# ----------------------------------------------------------------------------- loading


class GenaiDataError(ValueError):
    """genai-prices data this reader does not understand."""


def _eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_eval(k): _eval(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand)
    if isinstance(node, ast.Attribute) and ast.unparse(node) in ("datetime.UTC", "datetime.timezone.utc"):
        return UTC
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        args = [_eval(a) for a in node.args]
        kwargs = {k.arg: _eval(k.value) for k in node.keywords if k.arg is not None}
        if name == "Decimal":
            return Decimal(str(args[0]))
        if name == "datetime.date":
            return date(*args, **kwargs)
        if name == "datetime.time":
            return time(*args, **kwargs)
        if not re.fullmatch(r"[A-Z][A-Za-z]+", name):
            raise GenaiDataError(f"unexpected call {name!r} at line {node.lineno}")
        if args:
            raise GenaiDataError(f"unexpected positional arguments to {name} at line {node.lineno}")
        return {"__type__": name, **kwargs}
    raise GenaiDataError(f"unexpected syntax {ast.dump(node)[:80]} at line {getattr(node, 'lineno', '?')}")


def load_providers(source: str) -> list[dict[str, Any]]:
    """The ``providers`` list of genai-prices' ``data.py`` as plain dicts."""
    tree = ast.parse(source)
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            target = statement.targets[0]
        elif isinstance(statement, ast.AnnAssign):
            target = statement.target
        else:
            continue
        if statement.value is not None and ast.unparse(target) == "providers":
            providers = _eval(statement.value)
            if not isinstance(providers, list):
                raise GenaiDataError("providers is not a list")
            return providers
    raise GenaiDataError("no providers = [...] in the data file")


# ----------------------------------------------------------------------------- matching


def matches(clause: Mapping[str, Any], name: str) -> bool:
    """genai-prices' model match logic (case-insensitive except regex)."""
    kind = clause["__type__"]
    text = name.lower()
    if kind == "ClauseEquals":
        return bool(text == clause["equals"].lower())
    if kind == "ClauseStartsWith":
        return text.startswith(clause["starts_with"].lower())
    if kind == "ClauseEndsWith":
        return text.endswith(clause["ends_with"].lower())
    if kind == "ClauseContains":
        return clause["contains"].lower() in text
    if kind == "ClauseRegex":
        return re.search(clause["regex"], text) is not None
    if kind == "ClauseOr":
        return any(matches(c, name) for c in clause["or_"])
    if kind == "ClauseAnd":
        return all(matches(c, name) for c in clause["and_"])
    raise GenaiDataError(f"unknown match clause {kind}")


def find_model(
    providers: Mapping[str, Mapping[str, Any]], provider_id: str, name: str, *, fallback: bool = True
) -> dict[str, Any] | None:
    """The model genai-prices would price ``name`` with: first match, then fallback providers."""
    provider = providers.get(provider_id)
    if provider is None:
        return None
    for model in provider.get("models") or []:
        if matches(model["match"], name):
            return dict(model)
    if fallback:
        for other in provider.get("fallback_model_providers") or []:
            found = find_model(providers, other, name, fallback=False)
            if found is not None:
                return found
    return None


# ----------------------------------------------------------------------------- prices


def _prices(model_price: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model_price.items() if k not in ("__type__",) and v is not None}


def conditional_prices(model: Mapping[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """``[(constraint or None, prices), ...]`` in genai-prices' order (later wins)."""
    prices = model.get("prices")
    if isinstance(prices, Mapping) and prices.get("__type__") == "ModelPrice":
        return [(None, _prices(prices))]
    if isinstance(prices, list):
        return [(cp.get("constraint"), _prices(cp["prices"])) for cp in prices]
    return []


def price_variants(model: Mapping[str, Any]) -> Iterator[tuple[dict[str, str], Any, dict[str, Any]]]:
    for variant in model.get("price_variants") or []:
        yield variant["when"], variant.get("constraint"), _prices(variant["prices"])


def tier_variants(model: Mapping[str, Any], as_of: date) -> dict[str, dict[str, Any]]:
    """The batch / flex / priority prices in force at ``as_of``: only the keys each variant
    declares (genai-prices takes the others from the base price). First variant wins."""
    tiers: dict[str, dict[str, Any]] = {}
    for when, constraint, prices in price_variants(model):
        if len(when) != 1:
            continue
        ((key, value),) = when.items()
        tier = _TIERS.get((key, value))
        if tier is None or not prices:
            continue
        if constraint is not None and (
            constraint["__type__"] != "StartDateConstraint" or constraint["start_date"] > as_of
        ):
            continue
        for price_key, price in prices.items():
            tiers.setdefault(tier, {}).setdefault(price_key, price)
    return dict(sorted(tiers.items()))


def price_to_spec(
    prices: Mapping[str, Any], unmapped: Counter[str] | None = None, *, inclusive: bool = False
) -> dict[str, Any]:
    """A genai-prices ``ModelPrice`` as spendgate's spec JSON form (rates + thresholds).

    A ``TieredPrices`` value (``base`` + ``tiers[start, price]``: every token re-priced
    once the input is above ``start``) becomes long-context thresholds; for an entry whose
    thresholds apply at ``>=`` (``inclusive``, xAI) the threshold is ``start + 1``.
    """
    rates: dict[str, Any] = {}
    levels: dict[int, dict[str, Any]] = {}

    def put(target: dict[str, Any], rate: str, value: Decimal, per: int) -> None:
        amount = value / per  # a power-of-ten divisor never rounds; 3600 may (28 digits)
        if per != PER_HOUR and amount * per != value:
            raise GenaiDataError(f"{value}/{per} is not exact")
        if rate == "web_search":
            target["web_search"] = dict.fromkeys(_WEB_SEARCH_SIZES, amount)
        else:
            target[rate] = amount

    for key, value in prices.items():
        if key not in GENAI_PRICE_KEYS or (key == "audio_hours" and "input_audio_hours" in prices):
            if unmapped is not None and key != "audio_hours":
                unmapped[key] += 1
            continue
        rate, per = GENAI_PRICE_KEYS[key]
        if isinstance(value, Decimal):
            put(rates, rate, value, per)
        elif isinstance(value, Mapping) and value.get("__type__") == "TieredPrices":
            put(rates, rate, value["base"], per)
            for tier in value["tiers"]:
                above = int(tier["start"]) + (1 if inclusive else 0)
                put(levels.setdefault(above, {}), rate, tier["price"], per)
        else:
            raise GenaiDataError(f"unexpected price value for {key}: {value!r}")
    spec: dict[str, Any] = {"rates": rates}
    if levels:
        spec["thresholds"] = [{"above": above, "rates": levels[above]} for above in sorted(levels)]
    return spec

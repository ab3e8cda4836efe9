"""One LiteLLM model entry → one spendgate entry draft (or an image variant of another
model): the rate keys and their suffixes, service tiers, long-context thresholds, tiered
and off-peak pricing, web search and image prices, and the provider a key belongs to.
Pure: no I/O. :mod:`~spendgate.catalogue.litellm_format` converts whole files with it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from spendgate.core.money import parse_rate
from spendgate.core.pricing.catalogue import PROVIDER_ALIASES, canonical_provider
from spendgate.core.pricing.spec import CatalogueFormatError
from spendgate.errors import MoneyError

__all__ = [
    "LITELLM_RATE_KEYS",
    "ConversionReport",
    "Draft",
    "Variant",
    "convert_model",
    "image_variant",
    "is_cost_field",
    "litellm_provider_id",
    "provider_of",
    "variant_parts",
]

LITELLM_RATE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "input_cost_per_token": "input",
        "output_cost_per_token": "output",
        "cache_read_input_token_cost": "cache_read",
        "cache_creation_input_token_cost": "cache_write",
        "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
        "output_cost_per_reasoning_token": "reasoning",
        "input_cost_per_audio_token": "input_audio",
        "cache_read_input_audio_token_cost": "cache_read_audio",
        "input_cost_per_image_token": "input_image",
        "input_cost_per_video_token": "input_video",
        "output_cost_per_audio_token": "output_audio",
        "output_cost_per_image_token": "output_image",
        "output_cost_per_video_token": "output_video",
        "input_cost_per_character": "input_per_character",
        "output_cost_per_character": "output_per_character",
        "cost_per_second": "per_second",
        "input_cost_per_second": "input_per_second",
        "output_cost_per_second": "output_per_second",
        "input_cost_per_image": "input_per_image",
        "output_cost_per_image": "output_per_image",
        "input_cost_per_query": "input_per_query",
    }
)
"""LiteLLM's flat per-unit cost keys → spendgate rate names."""

_SERVICE_TIERS = MappingProxyType({"batches": "batch", "flex": "flex", "priority": "priority"})
_UNSUPPORTED_TIERS = frozenset({"balanced", "ultrafast", "decisions"})
_SUFFIXES = "|".join(sorted((*_SERVICE_TIERS, *_UNSUPPORTED_TIERS), key=len, reverse=True))
_BASES = "|".join(re.escape(k) for k in sorted(LITELLM_RATE_KEYS, key=len, reverse=True))
_RATE_KEY = re.compile(
    rf"^(?P<base>{_BASES})(?:_(?P<tier1>{_SUFFIXES}))?"
    rf"(?:_above_(?P<above>\d+(?:\.\d+)?)(?P<k>k)?_tokens)?(?:_(?P<tier2>{_SUFFIXES}))?$"
)
_IMAGE_VARIANT_KEY = re.compile(r"^output_cost_per_image_(?P<variant>\d+(?:\.\d+)?[kK]?)$")
_SIZE_SEGMENT = re.compile(r"^(?P<w>\d+|max)-x-(?P<h>\d+|max)$")
_STEPS_SEGMENT = re.compile(r"^(?:\d+|max)-steps$")
_WEB_SEARCH_SIZES = MappingProxyType(
    {f"search_context_size_{size}": size for size in ("low", "medium", "high")}
)
# Providers whose long-context thresholds apply at >= (LiteLLM's _INCLUSIVE_THRESHOLD_PROVIDERS).
_INCLUSIVE_PROVIDERS = frozenset({"xai"})
_CUSTOM_PROVIDER = "custom"


@dataclass
class ConversionReport:
    """What the conversion could not carry over, for the build (or an operator) to read."""

    unmapped: Counter[str] = field(default_factory=Counter)
    """Cost field name → number of models that declare it but whose value was dropped."""
    skipped: list[str] = field(default_factory=list)
    """Model keys that declare prices, none of which spendgate can express (not imported)."""
    unpriced: int = 0
    """Model entries that declare no price at all (not imported)."""
    collisions: list[str] = field(default_factory=list)
    """Keys that map to the same id with different prices, and how each was named."""
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = []
        if self.unmapped:
            lines.append(f"unmapped cost fields ({len(self.unmapped)} names, value dropped; #models):")
            lines += [f"  {name}: {count}" for name, count in sorted(self.unmapped.items())]
        if self.skipped:
            lines.append(f"models without any mappable price, not imported: {len(self.skipped)}")
            lines += [f"  {key}" for key in self.skipped]
        if self.collisions:
            lines.append(f"id collisions with different prices: {len(self.collisions)}")
            lines += [f"  {c}" for c in self.collisions]
        if self.unpriced:
            lines.append(f"models without any price in the source, not imported: {self.unpriced}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- providers


def litellm_provider_id(name: str) -> str:
    """spendgate's provider id for one of LiteLLM's ``litellm_provider`` spellings.

    ``vertex_ai-anthropic_models`` and the other ``vertex_ai-*`` → ``vertex_ai``,
    ``fireworks_ai-embedding-models`` → ``fireworks_ai``, ``text-completion-openai`` →
    ``openai``, ``azure_text`` → ``azure``, ``bedrock_converse`` → ``bedrock``, …
    """
    key = name.strip().lower()
    if key.startswith("vertex_ai"):
        return "vertex_ai"
    if key.startswith("fireworks_ai"):
        return "fireworks_ai"
    if key.startswith("text-completion-"):
        key = key.removeprefix("text-completion-")
    if key == "azure_text":
        return "azure"
    return canonical_provider(key)


def _is_provider_prefix(head: str, litellm_provider: str | None, provider: str) -> bool:
    h = head.lower()
    if litellm_provider is not None and h in (
        litellm_provider.lower(),
        litellm_provider.lower().replace("_", "-"),
    ):
        return True
    return litellm_provider_id(h.replace("-", "_")) == provider or litellm_provider_id(h) == provider


def _model_name(name: str, litellm_provider: str | None, provider: str) -> str:
    """``name`` without a leading provider segment (``azure/gpt-4o`` → ``gpt-4o``)."""
    head, sep, rest = name.partition("/")
    if sep and rest and _is_provider_prefix(head, litellm_provider, provider):
        return rest
    return name


# --------------------------------------------------------------------------- values


def _where(key: str, name: str) -> str:
    return f"model {key!r}, field {name}"


def _rate(value: object, key: str, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise CatalogueFormatError(f"{_where(key, name)}: expected a price, got {value!r}")
    try:
        return parse_rate(value)
    except MoneyError as exc:
        raise CatalogueFormatError(f"{_where(key, name)}: {exc}") from None


def _whole(value: object, key: str, name: str) -> int | None:
    """A token count: int, integral float or digit string; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CatalogueFormatError(f"{_where(key, name)}: expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and value == int(value):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise CatalogueFormatError(f"{_where(key, name)}: expected a whole number, got {value!r}")


def is_cost_field(name: str) -> bool:
    return "cost" in name or "pricing" in name or "price" in name


def _threshold(number: str, k: str | None, key: str, name: str) -> int:
    amount = Decimal(number) * (1000 if k else 1)
    if amount != amount.to_integral_value():
        raise CatalogueFormatError(f"{_where(key, name)}: threshold is not a whole number of tokens")
    return int(amount)


# --------------------------------------------------------------------------- one model


@dataclass
class Draft:
    key: str
    provider: str
    model: str
    mode: str
    max_input_tokens: int | None
    max_output_tokens: int | None
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        # An operator's entry with no provider keeps its key: "gpt-4o" overrides gpt-4o.
        return self.key if self.provider == _CUSTOM_PROVIDER else f"{self.provider}/{self.model}"

    def entry(self, entry_id: str, aliases: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": entry_id,
            "provider": self.provider,
            "model": self.model,
            "mode": self.mode,
            "aliases": [a for a in dict.fromkeys(aliases) if a != entry_id],
            "prices": [self.spec],
        }
        if self.max_input_tokens is not None:
            out["max_input_tokens"] = self.max_input_tokens
        if self.max_output_tokens is not None:
            out["max_output_tokens"] = self.max_output_tokens
        if self.provider in _INCLUSIVE_PROVIDERS:
            out["inclusive_thresholds"] = True
        return out


@dataclass
class Variant:
    key: str
    provider: str
    model: str
    mode: str
    name: str
    """``"<quality>/<WxH>"`` or ``"<WxH>"``."""
    price: Decimal

    @property
    def base_id(self) -> str:
        return f"{self.provider}/{self.model}"


def provider_of(key: str, raw: Mapping[str, Any]) -> tuple[str | None, str]:
    litellm_provider = raw.get("litellm_provider")
    if litellm_provider is not None and not isinstance(litellm_provider, str):
        raise CatalogueFormatError(f"{_where(key, 'litellm_provider')}: expected a string")
    if litellm_provider:
        return litellm_provider, litellm_provider_id(litellm_provider)
    head, sep, _ = key.partition("/")
    if sep and litellm_provider_id(head) in PROVIDER_ALIASES.values():
        return None, litellm_provider_id(head)
    return None, _CUSTOM_PROVIDER


def _mode(key: str, raw: Mapping[str, Any], default: str = "chat") -> str:
    mode = raw.get("mode") or default
    if not isinstance(mode, str) or not mode:
        raise CatalogueFormatError(f"{_where(key, 'mode')}: expected a string")
    return mode


def variant_parts(
    key: str, litellm_provider: str | None, provider: str
) -> tuple[str, re.Match[str], str] | None:
    """Split a size-prefixed image key into (variant name, size match, model path)."""
    segments = key.split("/")
    at = next((i for i, s in enumerate(segments) if _SIZE_SEGMENT.match(s)), None)
    if at is None:
        return None
    before, after = segments[:at], segments[at + 1 :]
    if before and _is_provider_prefix(before[0], litellm_provider, provider):
        before = before[1:]
    steps = after.pop(0) if after and _STEPS_SEGMENT.match(after[0]) else None
    if len(before) > 1 or not after:
        return None
    size = _SIZE_SEGMENT.match(segments[at])
    assert size is not None
    # Sizes are written like the calculator normalises a request's size: 1024-x-1792 → 1024x1792.
    name = "/".join([*before, *([steps] if steps else []), segments[at].lower().replace("-x-", "x")])
    return name, size, "/".join(after)


def image_variant(
    key: str, raw: Mapping[str, Any], parts: tuple[str, re.Match[str], str], report: ConversionReport
) -> Variant | None:
    """A size-prefixed image key (``hd/1024-x-1792/dall-e-3``) as a price of its base model."""
    litellm_provider, provider = provider_of(key, raw)
    name, size, model_path = parts
    # The order LiteLLM's default image calculator reads them in.
    price: Decimal | None = None
    for field_name in ("input_cost_per_image", "output_cost_per_image"):
        if raw.get(field_name) is not None:
            price = _rate(raw[field_name], key, field_name)
            break
    else:
        for field_name in ("input_cost_per_pixel", "output_cost_per_pixel"):
            if raw.get(field_name) is None:
                continue
            if not (size["w"].isdigit() and size["h"].isdigit()):
                report.unmapped[f"{field_name} (size {size[0]})"] += 1
                break
            price = _rate(raw[field_name], key, field_name) * int(size["w"]) * int(size["h"])
            break
    if price is None:
        report.skipped.append(key)
        return None
    return Variant(
        key=key,
        provider=provider,
        model=_model_name(model_path, litellm_provider, provider),
        mode=_mode(key, raw, "image_generation"),
        name=name,
        price=price,
    )


def _tiers(key: str, value: object, report: ConversionReport) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise CatalogueFormatError(f"{_where(key, 'tiered_pricing')}: expected a list of tiers")
    tiers = []
    for i, tier in enumerate(value):
        where = f"tiered_pricing[{i}]"
        if not isinstance(tier, Mapping):
            raise CatalogueFormatError(f"{_where(key, where)}: expected an object")
        if "range" not in tier:
            # Search providers tier by result count (max_results_range), not by prompt.
            report.unmapped["tiered_pricing (without a token range)"] += 1
            continue
        bounds = tier["range"]
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise CatalogueFormatError(f"{_where(key, where + '.range')}: expected [start, end]")
        start = _whole(bounds[0], key, f"{where}.range")
        end = _whole(bounds[1], key, f"{where}.range")
        rates: dict[str, Decimal] = {}
        for name, price in tier.items():
            if name == "range" or price is None:
                continue
            if name in LITELLM_RATE_KEYS:
                rates[LITELLM_RATE_KEYS[name]] = _rate(price, key, f"{where}.{name}")
            else:
                report.unmapped[f"tiered_pricing.{name}"] += 1
        tiers.append({"start": start or 0, "end": end, "rates": rates})
    return tiers


def _off_peak(key: str, value: object, report: ConversionReport) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        raise CatalogueFormatError(f"{_where(key, 'off_peak_pricing')}: expected an object")
    rates: dict[str, Decimal] = {}
    windows: list[dict[str, Any]] = []
    for name, item in value.items():
        if item is None:
            continue
        if name in LITELLM_RATE_KEYS:
            rates[LITELLM_RATE_KEYS[name]] = _rate(item, key, f"off_peak_pricing.{name}")
        elif name not in ("windows", "hours_utc", "weekday_timezone"):
            report.unmapped[f"off_peak_pricing.{name}"] += 1
    if value.get("windows") is not None:
        if not isinstance(value["windows"], list):
            raise CatalogueFormatError(f"{_where(key, 'off_peak_pricing.windows')}: expected a list")
        for i, window in enumerate(value["windows"]):
            if not isinstance(window, Mapping):
                where = _where(key, f"off_peak_pricing.windows[{i}]")
                raise CatalogueFormatError(f"{where}: expected an object")
            windows.append({"hours": window.get("hours_utc"), "weekdays": window.get("weekdays")})
    elif value.get("hours_utc") is not None:
        windows.append({"hours": value["hours_utc"], "weekdays": None})
    if not windows:
        raise CatalogueFormatError(f"{_where(key, 'off_peak_pricing')}: no hours_utc or windows")
    out: dict[str, Any] = {"rates": rates, "windows": windows}
    if value.get("weekday_timezone") is not None:
        out["weekday_timezone"] = str(value["weekday_timezone"])
    return out


def convert_model(key: str, raw: Mapping[str, Any], report: ConversionReport, source: str) -> Draft | None:
    litellm_provider, provider = provider_of(key, raw)
    levels: dict[tuple[str | None, int | None], dict[str, Decimal]] = {}
    variants: dict[str, Decimal] = {}
    web_search: dict[str, Decimal] = {}
    tiers: list[dict[str, Any]] = []
    off_peak: dict[str, Any] | None = None
    cache_hit: Decimal | None = None

    for name, value in raw.items():
        if value is None or not is_cost_field(name):
            continue
        if name == "search_context_cost_per_query":
            if not isinstance(value, Mapping):
                raise CatalogueFormatError(f"{_where(key, name)}: expected an object")
            for size, price in value.items():
                if size not in _WEB_SEARCH_SIZES:
                    raise CatalogueFormatError(
                        f"{_where(key, name)}: unknown size {size!r}, expected one of "
                        + ", ".join(_WEB_SEARCH_SIZES)
                    )
                if price is not None:
                    web_search[_WEB_SEARCH_SIZES[size]] = _rate(price, key, f"{name}.{size}")
        elif name == "tiered_pricing":
            tiers = _tiers(key, value, report)
        elif name == "off_peak_pricing":
            off_peak = _off_peak(key, value, report)
        elif name == "input_cost_per_token_cache_hit":
            cache_hit = _rate(value, key, name)
        elif (m := _RATE_KEY.match(name)) is not None:
            suffix = m["tier1"] or m["tier2"]
            if (m["tier1"] and m["tier2"]) or suffix in _UNSUPPORTED_TIERS:
                report.unmapped[name] += 1
                continue
            tier = _SERVICE_TIERS[suffix] if suffix else None
            above = _threshold(m["above"], m["k"], key, name) if m["above"] else None
            levels.setdefault((tier, above), {})[LITELLM_RATE_KEYS[m["base"]]] = _rate(value, key, name)
        elif (m := _IMAGE_VARIANT_KEY.match(name)) is not None:
            variants[m["variant"]] = _rate(value, key, name)
        else:
            report.unmapped[name] += 1

    rates = levels.get((None, None), {})
    if cache_hit is not None and "cache_read" not in rates:
        rates["cache_read"] = cache_hit
    spec: dict[str, Any] = {"rates": _rates_json(rates, variants, web_search)}
    thresholds = _thresholds(levels, None)
    if thresholds:
        spec["thresholds"] = thresholds
    if tiers:
        spec["tiers"] = tiers
    service: dict[str, Any] = {}
    for tier in _SERVICE_TIERS.values():
        if any(t == tier for t, _ in levels):
            sub: dict[str, Any] = {"rates": levels.get((tier, None), {})}
            if sub_thresholds := _thresholds(levels, tier):
                sub["thresholds"] = sub_thresholds
            service[tier] = sub
    if service:
        spec["service_tiers"] = service
    if off_peak is not None:
        spec["off_peak"] = off_peak
    if not (spec["rates"] or thresholds or tiers or service or off_peak):
        report.skipped.append(key)
        return None
    if source:
        spec["source"] = source
    return Draft(
        key=key,
        provider=provider,
        model=key if provider == _CUSTOM_PROVIDER else _model_name(key, litellm_provider, provider),
        mode=_mode(key, raw),
        max_input_tokens=_whole(raw.get("max_input_tokens"), key, "max_input_tokens"),
        max_output_tokens=_whole(
            raw["max_output_tokens"] if raw.get("max_output_tokens") is not None else raw.get("max_tokens"),
            key,
            "max_output_tokens",
        ),
        spec=spec,
    )


def _rates_json(
    rates: Mapping[str, Decimal], variants: Mapping[str, Decimal], web_search: Mapping[str, Decimal]
) -> dict[str, Any]:
    out: dict[str, Any] = dict(rates)
    if variants:
        out["image_variants"] = dict(variants)
    if web_search:
        out["web_search"] = dict(web_search)
    return out


def _thresholds(
    levels: Mapping[tuple[str | None, int | None], Mapping[str, Decimal]], tier: str | None
) -> list[dict[str, Any]]:
    return [
        {"above": above, "rates": dict(rates)}
        for (t, above), rates in sorted(levels.items(), key=lambda kv: kv[0][1] or 0)
        if t == tier and above is not None
    ]

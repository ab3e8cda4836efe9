"""What a model costs: the price data model of the catalogue.

A :class:`ModelEntry` carries one or more :class:`PriceSpec` in force from a date on
(price history). A spec holds flat :class:`Rates` plus the structures that re-price a
request as a whole: long-context :class:`Threshold` s, all-or-nothing :class:`Tier` s,
service-tier variants (``batch``, ``flex``, ``priority``) and an :class:`OffPeak` block.

Every rate is a :class:`~decimal.Decimal` in USD per unit (token, character, second,
image, query, web-search call). ``None`` means "not declared" and falls back as the
calculator documents; an explicit ``0`` is honoured.

``spec_from_dict`` / ``spec_to_dict`` convert to and from the catalogue's JSON form,
with every number written as a decimal string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from spendgate.core.money import parse_rate
from spendgate.errors import CatalogueFormatError, MoneyError

__all__ = [
    "RATE_FIELDS",
    "SERVICE_TIERS",
    "CatalogueFormatError",
    "ModelEntry",
    "OffPeak",
    "OffPeakWindow",
    "PriceSpec",
    "Rates",
    "Threshold",
    "Tier",
    "entry_from_dict",
    "entry_to_dict",
    "prices_nothing",
    "spec_from_dict",
    "spec_to_dict",
]

SERVICE_TIERS = ("batch", "flex", "priority")
_EMPTY: Mapping[str, Decimal] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """Flat rates in USD per unit. ``None`` = not declared."""

    # per token
    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    """5-minute (default TTL) cache writes."""
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    input_audio: Decimal | None = None
    cache_read_audio: Decimal | None = None
    input_image: Decimal | None = None
    input_video: Decimal | None = None
    output_audio: Decimal | None = None
    output_image: Decimal | None = None
    output_video: Decimal | None = None
    # per unit
    input_per_character: Decimal | None = None
    output_per_character: Decimal | None = None
    per_second: Decimal | None = None
    """Wall-clock or media seconds, when the model has no other per-second rate."""
    input_per_second: Decimal | None = None
    output_per_second: Decimal | None = None
    input_per_image: Decimal | None = None
    output_per_image: Decimal | None = None
    input_per_query: Decimal | None = None
    # keyed prices
    image_variants: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY)
    """Per generated image by ``"<quality>/<size>"``, ``"<size>"`` or ``"<quality>"``."""
    web_search: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY)
    """Per web-search call by context size: ``low`` / ``medium`` / ``high``."""

    def overlay(self, top: Rates) -> Rates:
        """These rates with every rate that ``top`` declares replaced by ``top``'s."""
        changes: dict[str, Any] = {}
        for name in RATE_FIELDS:
            value = getattr(top, name)
            if value is not None:
                changes[name] = value
        if top.image_variants:
            changes["image_variants"] = MappingProxyType({**self.image_variants, **top.image_variants})
        if top.web_search:
            changes["web_search"] = MappingProxyType({**self.web_search, **top.web_search})
        return replace(self, **changes) if changes else self

    def scaled(self, factor: Decimal) -> Rates:
        """Every declared rate multiplied by ``factor`` (batch's 50 % default)."""
        changes: dict[str, Any] = {
            name: value * factor for name in RATE_FIELDS if (value := getattr(self, name)) is not None
        }
        changes["image_variants"] = MappingProxyType({k: v * factor for k, v in self.image_variants.items()})
        changes["web_search"] = MappingProxyType({k: v * factor for k, v in self.web_search.items()})
        return replace(self, **changes)

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, n) is None for n in RATE_FIELDS) and not (
            self.image_variants or self.web_search
        )

    @property
    def has_token_rates(self) -> bool:
        return self.input is not None or self.output is not None


RATE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Rates) if f.name not in ("image_variants", "web_search")
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """Rates that apply to the whole request once its prompt is above ``above`` tokens."""

    above: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class Tier:
    """An all-or-nothing tier: a request with ``start < input_tokens <= end`` pays ``rates``.

    ``end=None`` means no upper bound. A request above every tier pays the last one.
    """

    start: int
    end: int | None
    rates: Rates


@dataclass(frozen=True, slots=True)
class OffPeakWindow:
    """Daily ``HH:MM-HH:MM`` UTC spans (start inclusive, end exclusive, may wrap midnight;
    start == end is the whole day), on ISO weekdays 1-7 (``None`` = every day)."""

    hours: tuple[tuple[time, time], ...]
    weekdays: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class OffPeak:
    """Cheaper rates while the billing time is inside one of the windows."""

    rates: Rates
    windows: tuple[OffPeakWindow, ...]
    weekday_timezone: str = "UTC"
    """The calendar on which the weekdays are read (hours are always UTC)."""


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PriceSpec:
    """The prices of a model from ``effective_from`` on (``None`` = since always).

    Compared and hashed by identity, so resolved rates can be cached per spec.
    """

    rates: Rates
    thresholds: tuple[Threshold, ...] = ()
    tiers: tuple[Tier, ...] = ()
    service_tiers: Mapping[str, PriceSpec] = field(default_factory=lambda: MappingProxyType({}))
    off_peak: OffPeak | None = None
    effective_from: datetime | None = None
    source: str = ""

    def overlay(self, top: PriceSpec) -> PriceSpec:
        """Layer an override on this spec: declared rates replace, structures replace whole."""
        tiers = {**self.service_tiers}
        for name, spec in top.service_tiers.items():
            tiers[name] = tiers[name].overlay(spec) if name in tiers else spec
        return PriceSpec(
            rates=self.rates.overlay(top.rates),
            thresholds=top.thresholds or self.thresholds,
            tiers=top.tiers or self.tiers,
            service_tiers=MappingProxyType(tiers),
            off_peak=top.off_peak or self.off_peak,
            effective_from=top.effective_from or self.effective_from,
            source=top.source or self.source,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEntry:
    """One priced model in one provider's catalogue."""

    id: str
    """Canonical ``provider/model``."""
    provider: str
    model: str
    mode: str = "chat"
    aliases: tuple[str, ...] = ()
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    inclusive_thresholds: bool = False
    """Thresholds apply at ``>=`` instead of ``>`` (xAI)."""
    prices: tuple[PriceSpec, ...] = ()
    """Oldest first; the last one with ``effective_from <= t`` is in force at ``t``."""
    free: bool = False
    """Declared free (a local model, a ``:free`` variant): a usage its rates price at $0 is
    a priced $0. Without it such a usage is *unpriced*: a zero rate is a missing price."""

    def spec_at(self, at: datetime | None) -> PriceSpec | None:
        """The spec in force at ``at`` (``None`` = now), or None before the first."""
        if not self.prices:
            return None
        if at is None:
            last = self.prices[-1]
            if last.effective_from is None:
                return last
            at = datetime.now(UTC)
        found: PriceSpec | None = None
        for spec in self.prices:
            if spec.effective_from is None or spec.effective_from <= at:
                found = spec
            else:
                break
        return found


def prices_nothing(spec: PriceSpec) -> bool:
    """True when every rate ``spec`` declares, at every level and tier, is zero (and it
    declares at least one): how LiteLLM's format, which has no free flag, writes a free
    model."""
    rate_sets = [spec.rates, *(t.rates for t in spec.thresholds), *(t.rates for t in spec.tiers)]
    if spec.off_peak is not None:
        rate_sets.append(spec.off_peak.rates)
    values: list[Decimal] = []
    for rates in rate_sets:
        values += [v for n in RATE_FIELDS if (v := getattr(rates, n)) is not None]
        values += [*rates.image_variants.values(), *rates.web_search.values()]
    if any(values) or not all(prices_nothing(sub) for sub in spec.service_tiers.values()):
        return False
    return bool(values) or bool(spec.service_tiers)


# ---------------------------------------------------------------------------- JSON form


def _rate(value: object, where: str) -> Decimal:
    try:
        return parse_rate(value)  # type: ignore[arg-type]
    except MoneyError as exc:
        raise CatalogueFormatError(f"{where}: {exc}") from None


def rates_from_dict(data: Mapping[str, Any], where: str) -> Rates:
    if not isinstance(data, Mapping):
        raise CatalogueFormatError(f"{where}: expected an object of rates")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("image_variants", "web_search"):
            if not isinstance(value, Mapping):
                raise CatalogueFormatError(f"{where}.{key}: expected an object")
            values[key] = MappingProxyType({str(k): _rate(v, f"{where}.{key}.{k}") for k, v in value.items()})
        elif key in RATE_FIELDS:
            values[key] = _rate(value, f"{where}.{key}")
        else:
            raise CatalogueFormatError(f"{where}: unknown rate {key!r}")
    return Rates(**values)


def rates_to_dict(rates: Rates) -> dict[str, Any]:
    out: dict[str, Any] = {n: _dec(v) for n in RATE_FIELDS if (v := getattr(rates, n)) is not None}
    if rates.image_variants:
        out["image_variants"] = {k: _dec(v) for k, v in sorted(rates.image_variants.items())}
    if rates.web_search:
        out["web_search"] = {k: _dec(v) for k, v in sorted(rates.web_search.items())}
    return out


def _dec(value: Decimal) -> str:
    text = f"{value.normalize():f}" if value else "0"
    # Short scientific form for tiny rates keeps the file readable ("2.5E-6").
    sci = f"{value.normalize():E}" if value else "0"
    return sci if len(sci) < len(text) else text


def _parse_hours(value: object, where: str) -> tuple[tuple[time, time], ...]:
    spans = [value] if isinstance(value, str) else value
    if not isinstance(spans, list | tuple):
        raise CatalogueFormatError(f"{where}: expected 'HH:MM-HH:MM' or a list of them")
    out = []
    for span in spans:
        try:
            start, end = str(span).split("-")
            out.append((time.fromisoformat(start.strip()), time.fromisoformat(end.strip())))
        except ValueError:
            raise CatalogueFormatError(f"{where}: bad window {span!r}, expected 'HH:MM-HH:MM'") from None
    return tuple(out)


def _off_peak_from_dict(data: Mapping[str, Any], where: str) -> OffPeak:
    windows = []
    for i, w in enumerate(data.get("windows", [])):
        days = w.get("weekdays")
        if days is not None and not all(isinstance(d, int) and 1 <= d <= 7 for d in days):
            raise CatalogueFormatError(f"{where}.windows[{i}].weekdays: expected ISO weekdays 1-7")
        windows.append(
            OffPeakWindow(
                hours=_parse_hours(w.get("hours"), f"{where}.windows[{i}].hours"),
                weekdays=frozenset(days) if days is not None else None,
            )
        )
    return OffPeak(
        rates=rates_from_dict(data.get("rates", {}), f"{where}.rates"),
        windows=tuple(windows),
        weekday_timezone=str(data.get("weekday_timezone", "UTC")),
    )


def _parse_when(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        if isinstance(value, str) and len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise CatalogueFormatError(f"{where}: bad date {value!r}, expected ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_SPEC_KEYS = frozenset({"rates", "thresholds", "tiers", "service_tiers", "off_peak", "from", "source"})


def spec_from_dict(data: Mapping[str, Any], where: str = "prices") -> PriceSpec:
    """Read one price spec from its JSON form; errors name the offending field."""
    if not isinstance(data, Mapping):
        raise CatalogueFormatError(f"{where}: expected an object")
    unknown = set(data) - _SPEC_KEYS
    if unknown:
        raise CatalogueFormatError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    thresholds = tuple(
        sorted(
            (
                Threshold(int(t["above"]), rates_from_dict(t.get("rates", {}), f"{where}.thresholds[{i}]"))
                for i, t in enumerate(data.get("thresholds", []))
            ),
            key=lambda t: t.above,
        )
    )
    tiers = tuple(
        sorted(
            (
                Tier(
                    int(t.get("start", 0)),
                    None if t.get("end") is None else int(t["end"]),
                    rates_from_dict(t.get("rates", {}), f"{where}.tiers[{i}]"),
                )
                for i, t in enumerate(data.get("tiers", []))
            ),
            key=lambda t: t.start,
        )
    )
    service = {}
    for name, sub in data.get("service_tiers", {}).items():
        if name not in SERVICE_TIERS:
            raise CatalogueFormatError(f"{where}.service_tiers: unknown tier {name!r}")
        service[name] = spec_from_dict(sub, f"{where}.service_tiers.{name}")
    off_peak = data.get("off_peak")
    return PriceSpec(
        rates=rates_from_dict(data.get("rates", {}), f"{where}.rates"),
        thresholds=thresholds,
        tiers=tiers,
        service_tiers=MappingProxyType(service),
        off_peak=_off_peak_from_dict(off_peak, f"{where}.off_peak") if off_peak else None,
        effective_from=_parse_when(data.get("from"), f"{where}.from"),
        source=str(data.get("source", "")),
    )


def spec_to_dict(spec: PriceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.effective_from is not None:
        out["from"] = spec.effective_from.isoformat()
    out["rates"] = rates_to_dict(spec.rates)
    if spec.thresholds:
        out["thresholds"] = [{"above": t.above, "rates": rates_to_dict(t.rates)} for t in spec.thresholds]
    if spec.tiers:
        out["tiers"] = [{"start": t.start, "end": t.end, "rates": rates_to_dict(t.rates)} for t in spec.tiers]
    if spec.service_tiers:
        out["service_tiers"] = {k: spec_to_dict(v) for k, v in sorted(spec.service_tiers.items())}
    if spec.off_peak is not None:
        op = spec.off_peak
        out["off_peak"] = {
            "rates": rates_to_dict(op.rates),
            "windows": [
                {
                    "hours": [f"{a:%H:%M}-{b:%H:%M}" for a, b in w.hours],
                    "weekdays": sorted(w.weekdays) if w.weekdays is not None else None,
                }
                for w in op.windows
            ],
            "weekday_timezone": op.weekday_timezone,
        }
    if spec.source:
        out["source"] = spec.source
    return out


_ENTRY_KEYS = frozenset(
    {
        "id",
        "provider",
        "model",
        "mode",
        "aliases",
        "max_input_tokens",
        "max_output_tokens",
        "inclusive_thresholds",
        "prices",
        "free",
    }
)


def entry_from_dict(data: Mapping[str, Any], where: str = "model") -> ModelEntry:
    """Read one model entry; ``id`` defaults to ``provider/model``."""
    if not isinstance(data, Mapping):
        raise CatalogueFormatError(f"{where}: expected an object")
    unknown = set(data) - _ENTRY_KEYS
    if unknown:
        raise CatalogueFormatError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        provider = str(data["provider"])
        model = str(data["model"])
    except KeyError as exc:
        raise CatalogueFormatError(f"{where}: missing field {exc.args[0]!r}") from None
    entry_id = str(data.get("id") or f"{provider}/{model}")
    free = data.get("free", False)
    if not isinstance(free, bool):
        raise CatalogueFormatError(f"{where}.free: expected true or false, got {free!r}")
    prices = tuple(
        sorted(
            (spec_from_dict(p, f"{entry_id}.prices[{i}]") for i, p in enumerate(data.get("prices", []))),
            key=lambda s: (s.effective_from is not None, s.effective_from or datetime.min),
        )
    )
    return ModelEntry(
        id=entry_id,
        provider=provider,
        model=model,
        mode=str(data.get("mode", "chat")),
        aliases=tuple(data.get("aliases", ())),
        max_input_tokens=data.get("max_input_tokens"),
        max_output_tokens=data.get("max_output_tokens"),
        inclusive_thresholds=bool(data.get("inclusive_thresholds", False)),
        prices=prices,
        free=free,
    )


def entry_to_dict(entry: ModelEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry.id, "provider": entry.provider, "model": entry.model}
    if entry.mode != "chat":
        out["mode"] = entry.mode
    if entry.aliases:
        out["aliases"] = list(entry.aliases)
    if entry.max_input_tokens is not None:
        out["max_input_tokens"] = entry.max_input_tokens
    if entry.max_output_tokens is not None:
        out["max_output_tokens"] = entry.max_output_tokens
    if entry.inclusive_thresholds:
        out["inclusive_thresholds"] = True
    if entry.free:
        out["free"] = True
    out["prices"] = [spec_to_dict(p) for p in entry.prices]
    return out

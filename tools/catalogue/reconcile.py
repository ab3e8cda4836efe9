"""Reconcile LiteLLM's and genai-prices' prices, rate by rate, and record every decision.

Each LiteLLM entry of a provider genai-prices covers is compared with the model
genai-prices would price its name with, on every rate of the spec in force today: flat
rates, long-context thresholds, batch / flex / priority variants. Rates are named by a
path: ``input``, ``web_search.medium``, ``>200000.output`` (a threshold),
``batch:cache_read`` (a service tier), ``batch:>272000.input``.

* Equal: nothing to decide.
* Declared by one source only: kept (rule ``one-source-rate``); genai-prices' are added
  to the entry only when genai-prices prices the entry's own name (see :func:`match_kind`).
* Different: decided by the first rule of :data:`RULES` that applies, else by a reviewed
  decision of :mod:`tools.catalogue.reviews`, else LiteLLM's figure stays and the row is
  marked ``unreviewed`` (the build lists them, so a reviewer can decide them).

* Dated price changes: a review with a :class:`~tools.catalogue.reviews.PriceChange` gives
  its entries a price history. LiteLLM's spec stays as the price until the change; from it
  the spec is the published rates, and every other rate is **composed** (rule
  :data:`COMPOSED_CHANGE`) by the change's ratio for its token kind: a rate of the earlier
  spec × (the new standard rate of that kind ÷ the earlier one), where a standard rate
  that is not published follows its side's base rate (input for cache and input
  modalities, output for reasoning and output modalities), and a service tier's or
  threshold's rate follows the same kind's standard rate. So a tier or modality keeps its
  relation to the standard price and nothing stays at the earlier level. Where the sources
  disagree on such an entry, the review decides, and the composed figure must equal
  genai-prices' (else the build stops: the review or the rule is wrong).

LiteLLM's figures are first stored as the shortest decimal the source meant
(:func:`normalise_litellm`). The record (:class:`Reconciliation`) becomes the committed
``reconciliation.json`` next to the catalogue.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final, Literal

from tools.catalogue import genai
from tools.catalogue.reviews import REVIEWS, PriceChange, Review

from spendgate.core.pricing.catalogue import _SNAPSHOT
from spendgate.core.pricing.table import TOKEN_KINDS

__all__ = [
    "COMPOSED_CHANGE",
    "GENAI_SOURCE",
    "LITELLM_SOURCE",
    "RULES",
    "Decision",
    "PriceChangeError",
    "Reconciliation",
    "compose_change",
    "figure_text",
    "flatten",
    "match_kind",
    "normalise_litellm",
    "put_rate",
    "reconcile_entries",
    "shortest",
    "zone_compatible",
]

Source = Literal["litellm", "genai-prices"]
LITELLM_SOURCE: Final = "litellm"
GENAI_SOURCE: Final = "genai-prices"

RULES: Mapping[str, str] = {
    "one-source-model": "a model only one source prices is included, priced by that source",
    "one-source-rate": (
        "a rate (modality, tier, threshold, batch, cache TTL) only one source declares is kept; "
        "genai-prices' rates are added only where it prices the entry's own name"
    ),
    "float-artefact": (
        "a LiteLLM figure with more than 15 significant digits whose 15-digit rounding is short "
        "(1.0000000000000001e-07) is stored as that rounding (1E-7): the decimal the source meant"
    ),
    "per-hour": (
        "a LiteLLM per-second figure that is a per-hour or per-minute price divided "
        "(0.0002833333333333333 = 1.02/h) is stored as that price / 3600 (or / 60) to 28 digits"
    ),
    "rounded-conversion": (
        "LiteLLM's figure is genai-prices' rounded to fewer digits (3.083e-05 for 0.111/h): "
        "genai-prices' unrounded conversion is taken"
    ),
    "regional-variant": (
        "the entry is a regional or data-zone variant (bedrock/eu-west-3/…, us-gov…, azure/eu/…, "
        "a global./us. prefix genai-prices' model does not name): priced from its own entry (LiteLLM)"
    ),
    "family-match": (
        "genai-prices prices the name only by a family pattern or another provider's model, "
        "not as its own model: the entry's own price (LiteLLM) is kept"
    ),
    "time-of-day": (
        "genai-prices prices the model by the hour of the day: LiteLLM's price and its off-peak "
        "block are kept (spendgate's off-peak windows)"
    ),
}

COMPOSED_CHANGE: Final = (
    "from a dated price change, a rate the change does not publish is the earlier rate x (the new "
    "standard rate of its kind / the earlier one): a standard cache or input-modality rate follows "
    "input, reasoning and output modalities follow output, a service tier's or threshold's rate "
    "follows the same kind's standard rate; exact Decimal arithmetic (28 digits for a ratio that "
    "does not terminate)"
)

_DIGITS = 15  # a double carries 15 significant decimal digits faithfully
_SHORT = 12  # a rounding this short is what the source typed, not a float's tail
_HOURLY = 6  # per-hour / per-minute prices are published with at most this many digits


# ----------------------------------------------------------------------------- decimals


def figure_text(value: Decimal) -> str:
    """A figure as the catalogue writes it: the shorter of plain and scientific notation."""
    if not value:
        return "0"
    plain, sci = f"{value.normalize():f}", f"{value.normalize():E}"
    return sci if len(sci) < len(plain) else plain


def _digits(value: Decimal) -> int:
    return len(value.normalize().as_tuple().digits)


def shortest(value: Decimal) -> Decimal | None:
    """The decimal a float artefact stands for (``1.0000000000000001E-7`` → ``1E-7``), or None."""
    if not value or _digits(value) <= _DIGITS:
        return None
    rounded = Decimal(f"{float(value):.{_DIGITS}g}").normalize()
    return rounded if _digits(rounded) <= _SHORT else None


def per_hour(value: Decimal) -> tuple[Decimal, str] | None:
    """``(exact per-second rate, "1.02 per hour")`` for a per-second float of a per-hour
    or per-minute price; None when the figure is not one."""
    if not value or _digits(value) <= _DIGITS:
        return None
    for per, unit in ((3600, "hour"), (60, "minute")):
        price = Decimal(f"{float(value * per):.{_DIGITS}g}").normalize()
        if _digits(price) <= _HOURLY:
            return (price / per).normalize(), f"{price} per {unit}"
    return None


@dataclass(frozen=True, slots=True)
class Normalised:
    key: str
    field: str
    figure: Decimal
    taken: Decimal
    rule: str
    note: str = ""


def normalise_litellm(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Normalised]]:
    """LiteLLM's JSON with float artefacts and divided per-hour prices stored exactly."""
    changes: list[Normalised] = []

    def walk(value: Any, key: str, where: str) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, key, f"{where}.{k}" if where else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, Decimal):
            return value
        if "per_second" in where and (hourly := per_hour(value)) is not None:
            changes.append(Normalised(key, where, value, hourly[0], "per-hour", hourly[1]))
            return hourly[0]
        if (short := shortest(value)) is not None:
            changes.append(Normalised(key, where, value, short, "float-artefact"))
            return short
        return value

    out = {k: walk(v, k, "") if isinstance(v, Mapping) else v for k, v in data.items()}
    return out, changes


# ----------------------------------------------------------------------------- rate paths


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _flat_rates(rates: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Decimal]]:
    for name, value in rates.items():
        if isinstance(value, Mapping):
            for sub, x in value.items():
                yield f"{prefix}{name}.{sub}", _dec(x)
        else:
            yield f"{prefix}{name}", _dec(value)


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Decimal]:
    """Every rate of a spec (JSON form) by path; tiered and off-peak blocks are not rates
    of the request as a whole and are left out (only LiteLLM has them)."""
    out = dict(_flat_rates(spec.get("rates", {}), prefix))
    for threshold in spec.get("thresholds", []):
        out.update(_flat_rates(threshold["rates"], f"{prefix}>{threshold['above']}."))
    for tier, sub in spec.get("service_tiers", {}).items():
        out.update(flatten(sub, f"{tier}:"))
    return out


_PATH = re.compile(
    r"^(?:(?P<tier>batch|flex|priority):)?(?:>(?P<above>\d+)\.)?(?P<rate>[a-z_0-9]+)(?:\.(?P<sub>.+))?$"
)


def put_rate(spec: dict[str, Any], path: str, value: Decimal) -> None:
    """Set one rate of a spec (JSON form) by its path, creating the tier or threshold."""
    match = _PATH.match(path)
    if match is None:
        raise ValueError(f"not a rate path: {path!r}")
    if match["tier"]:
        spec = spec.setdefault("service_tiers", {}).setdefault(match["tier"], {"rates": {}})
    rates = spec.setdefault("rates", {})
    if match["above"]:
        above = int(match["above"])
        levels = spec.setdefault("thresholds", [])
        level = next((t for t in levels if int(t["above"]) == above), None)
        if level is None:
            level = {"above": above, "rates": {}}
            levels.append(level)
            levels.sort(key=lambda t: int(t["above"]))
        rates = level["rates"]
    if match["sub"]:
        rates.setdefault(match["rate"], {})[match["sub"]] = value
    else:
        rates[match["rate"]] = value


# ----------------------------------------------------------------------------- price changes

# The standard rate an unpublished standard rate of each kind follows in a price change.
_CHANGE_ANCHOR: Mapping[str, str] = {
    kind: "output" if kind == "reasoning" or kind.startswith("output") else "input"
    for kind in TOKEN_KINDS
    if kind not in ("input", "output")
}
_RATIO: Final = Context(prec=28, rounding=ROUND_HALF_EVEN)


class PriceChangeError(ValueError):
    """A price change that cannot be applied to an entry's spec as the rule says."""


def compose_change(spec: Mapping[str, Any], change: PriceChange, where: str) -> dict[str, Any]:
    """The spec (JSON form) in force from ``change.start``, given the one before it.

    The published rates are taken as they are; every other per-token rate of ``spec`` is
    composed (:data:`COMPOSED_CHANGE`); a rate that is not per token is carried over only
    when ``change.keep`` names it. Raises :class:`PriceChangeError` for what the rule
    cannot compose (a missing or zero reference rate, range tiers, off-peak windows).
    """
    if spec.get("tiers") or spec.get("off_peak"):
        raise PriceChangeError(f"{where}: range tiers and off-peak windows are not composed")
    unknown = set(change.rates) - set(TOKEN_KINDS)
    if unknown or not {"input", "output"} <= set(change.rates):
        raise PriceChangeError(f"{where}: a change publishes input and output per-token rates, got {unknown}")
    before = flatten(spec)
    after: dict[str, Decimal] = {kind: Decimal(rate) for kind, rate in change.rates.items()}

    def new(path: str) -> Decimal:
        if path in after:
            return after[path]
        match = _PATH.match(path)
        if match is None or match["rate"] not in TOKEN_KINDS:
            if change.keep and fnmatch.fnmatchcase(path, change.keep):
                after[path] = before[path]
                return before[path]
            raise PriceChangeError(f"{where}: {path} is not a per-token rate and the change does not keep it")
        if match["tier"]:
            reference = path.partition(":")[2]
            reference = reference if reference in before else match["rate"]
        elif match["above"]:
            reference = match["rate"]
        else:
            reference = _CHANGE_ANCHOR[match["rate"]]
        if not before.get(reference):
            raise PriceChangeError(f"{where}: {path} has no earlier {reference} rate to compose with")
        composed = _RATIO.divide(_RATIO.multiply(before[path], new(reference)), before[reference])
        after[path] = composed.normalize(_RATIO)
        return after[path]

    spec_from: dict[str, Any] = {}
    for path in sorted(before.keys() | after.keys()):
        put_rate(spec_from, path, new(path))
    spec_from["from"] = change.start.isoformat()
    return spec_from


# ----------------------------------------------------------------------------- matching

# A named AWS / Azure region as a path segment (bedrock/eu-west-3/…, us-gov-west-1/…).
_REGION = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d+/")
# Data zones: Bedrock's cross-region profiles (us., eu., apac., …) and Azure's (eu/, us/).
_ZONE = re.compile(r"^(?P<zone>us-gov|us|eu|apac|jp|au|ca|global)[./]")
_GENAI_ZONE = re.compile(r"^(?P<zone>global|regional)\.")
_VERSION_TAIL = re.compile(r":\d+$")


def _zone(provider: str, model: str) -> str | None:
    if _REGION.match(model):
        return "region"
    match = _ZONE.match(model)
    if match is None:
        return None
    zone = match["zone"]
    if zone == "us-gov" or provider != "bedrock":
        return "region"  # GovCloud, and Azure's data zones: priced per zone, not as genai-prices' global
    return zone


def zone_compatible(provider: str, model: str, genai_id: str) -> bool:
    """Does genai-prices' model price the same deployment class as the entry?

    genai-prices names Bedrock's classes in its ids: ``global.`` (global cross-region) and
    ``regional.`` (in-region and geographic cross-region, at us-east-1 prices); a bare id
    is the us-east-1 price of both. A named region, GovCloud, Azure's data zones and the
    non-US Bedrock zones (eu., apac., jp., au., ca.: priced per geography) have no
    genai-prices model of their own.
    """
    zone = _zone(provider, model)
    found = _GENAI_ZONE.match(genai_id)
    genai_zone = found["zone"] if found else None
    if zone is None or zone == "us":
        return genai_zone in ("regional", None)
    if zone == "global":
        return genai_zone in ("global", None)
    return False


def _bare(name: str) -> str:
    name = _REGION.sub("", name.lower())
    name = _ZONE.sub("", name)
    name = _GENAI_ZONE.sub("", name)
    return _VERSION_TAIL.sub("", name)


def _clause_names(clause: Mapping[str, Any]) -> Iterator[str]:
    kind = clause["__type__"]
    if kind == "ClauseEquals":
        yield clause["equals"]
    elif kind == "ClauseStartsWith":
        yield clause["starts_with"]
    elif kind == "ClauseContains":
        yield clause["contains"]
    elif kind == "ClauseOr":
        for sub in clause["or_"]:
            yield from _clause_names(sub)


MatchKind = Literal["exact", "snapshot", "family"]


def match_kind(model: Mapping[str, Any], name: str) -> MatchKind:
    """How genai-prices' ``model`` prices ``name``: as that name (``exact``), as the model
    the dated snapshot ``name`` is of (``snapshot``), or by a wider pattern (``family``)."""
    names = {_bare(n) for n in (model["id"], *_clause_names(model["match"]))}
    bare = _bare(name)
    if bare in names:
        return "exact"
    if _SNAPSHOT.sub("", bare) in names:
        return "snapshot"
    return "family"


# ----------------------------------------------------------------------------- record


@dataclass(frozen=True, slots=True)
class Decision:
    """One rate on which the sources disagree, and what the catalogue takes."""

    entry: str
    rate: str
    genai_model: str
    litellm: Decimal
    genai: Decimal
    source: Source
    rule: str | None = None
    review: str | None = None

    @property
    def taken(self) -> Decimal:
        return self.genai if self.source == GENAI_SOURCE else self.litellm

    @property
    def reason(self) -> str:
        return self.rule or self.review or "unreviewed"


@dataclass
class Reconciliation:
    """Everything the comparison found and decided, for ``reconciliation.json``."""

    decisions: list[Decision] = field(default_factory=list)
    normalised: list[Normalised] = field(default_factory=list)
    added: list[tuple[str, str, str, Decimal]] = field(default_factory=list)
    """(entry, rate path, genai-prices model, figure) taken from genai-prices alone."""
    compared: int = 0
    agreed: int = 0
    litellm_only_rates: int = 0
    genai_only_rates_not_added: int = 0
    models_litellm_only: Counter[str] = field(default_factory=Counter)
    models_genai_only: Counter[str] = field(default_factory=Counter)
    reviews_used: Counter[str] = field(default_factory=Counter)
    price_changes: list[tuple[str, str]] = field(default_factory=list)
    """(entry, review) for every entry given a dated price change by a review."""

    def counts(self) -> dict[str, Any]:
        by_rule = Counter(d.rule for d in self.decisions if d.rule)
        reviewed = [d for d in self.decisions if d.review]
        return {
            "entries_compared": self.compared,
            "rates_agreed": self.agreed,
            "disagreements": len(self.decisions),
            "decided_by_rule": sum(by_rule.values()),
            "decided_by_review": len(reviewed),
            "unreviewed_litellm_kept": sum(1 for d in self.decisions if d.reason == "unreviewed"),
            "by_rule": dict(sorted(by_rule.items())),
            "by_review": dict(sorted(Counter(d.review for d in reviewed if d.review).items())),
            "taken_from": dict(sorted(Counter(d.source for d in self.decisions).items())),
            "rates_only_litellm_kept": self.litellm_only_rates,
            "rates_only_genai_prices_added": len(self.added),
            "rates_only_genai_prices_not_added": self.genai_only_rates_not_added,
            "figures_normalised": dict(sorted(Counter(n.rule for n in self.normalised).items())),
            "models_only_litellm": sum(self.models_litellm_only.values()),
            "models_only_genai_prices": sum(self.models_genai_only.values()),
        }


# ----------------------------------------------------------------------------- comparing


def _current(model: Mapping[str, Any], as_of: date) -> dict[str, Any] | None:
    """genai-prices' prices in force on ``as_of`` (later constraints win); None when they
    depend on the time of day."""
    current: dict[str, Any] | None = None
    for constraint, prices in genai.conditional_prices(model):
        if constraint is None:
            current = prices
        elif constraint["__type__"] != "StartDateConstraint":
            return None
        elif constraint["start_date"] <= as_of:
            current = prices
    return current


def genai_spec(
    model: Mapping[str, Any], prices: Mapping[str, Any], as_of: date, inclusive: bool
) -> dict[str, Any]:
    """genai-prices' price of a model as a spendgate spec, with its tier variants' own keys."""
    spec = genai.price_to_spec(prices, inclusive=inclusive)
    tiers = {
        tier: genai.price_to_spec(own, inclusive=inclusive)
        for tier, own in genai.tier_variants(model, as_of).items()
    }
    if tiers:
        spec["service_tiers"] = tiers
    return spec


def _review(entry_id: str, path: str, model_id: str, reviews: Sequence[Review]) -> Review | None:
    return next((r for r in reviews if r.change is None and r.applies(entry_id, path, model_id)), None)


def _apply_change(
    entry: dict[str, Any], as_of: date, record: Reconciliation, reviews: Sequence[Review]
) -> Review | None:
    """Give ``entry`` the dated spec of the first price change that names it and is in force
    on ``as_of`` (a later one is not applied yet); LiteLLM's spec stays before it."""
    review = next((r for r in reviews if r.change is not None and r.applies(entry["id"], "*", "*")), None)
    if review is None or review.change is None or review.change.start.date() > as_of:
        return None
    if len(entry["prices"]) != 1:
        raise PriceChangeError(f"{entry['id']}: a price change applies to a single LiteLLM spec")
    (earlier,) = entry["prices"]
    later = compose_change(earlier, review.change, f"{entry['id']} (review {review.id})")
    later["source"] = f"{earlier.get('source', LITELLM_SOURCE)}+review:{review.id}"
    entry["prices"] = [earlier, later]
    record.price_changes.append((entry["id"], review.id))
    return review


def _rounded_from(litellm: Decimal, genai_figure: Decimal) -> bool:
    """Is ``litellm`` a rounding (to 3 or more digits) of genai-prices' long, converted figure?"""
    digits = _digits(litellm)
    if digits < 3 or _digits(genai_figure) <= max(digits, _HOURLY):
        return False
    exponent = genai_figure.adjusted() - digits + 1
    return genai_figure.quantize(Decimal(1).scaleb(exponent)) == litellm.normalize()


def _decide(
    entry: Mapping[str, Any],
    path: str,
    model_id: str,
    figures: tuple[Decimal, Decimal],
    kind: MatchKind,
    compatible: bool,
    reviews: Sequence[Review],
) -> Decision:
    lite, gen = figures

    def decided(source: Source, rule: str | None = None, review: str | None = None) -> Decision:
        return Decision(entry["id"], path, model_id, lite, gen, source, rule, review)

    if not compatible:
        return decided(LITELLM_SOURCE, rule="regional-variant")
    if kind == "family":
        return decided(LITELLM_SOURCE, rule="family-match")
    if _rounded_from(lite, gen):
        return decided(GENAI_SOURCE, rule="rounded-conversion")
    review = _review(entry["id"], path, model_id, reviews)
    if review is not None:
        return decided(review.take, review=review.id)
    return decided(LITELLM_SOURCE)


def _reconcile_entry(
    entry: dict[str, Any],
    model: Mapping[str, Any],
    kind: MatchKind,
    as_of: date,
    record: Reconciliation,
    reviews: Sequence[Review],
    change: Review | None = None,
) -> None:
    prices = _current(model, as_of)
    spec = entry["prices"][-1]
    lite = flatten(entry["prices"][0] if change is not None else spec)  # LiteLLM's own figures
    now = flatten(spec)
    label = model["id"]
    record.compared += 1
    if prices is None:  # time-of-day prices: compared against nothing one-to-one
        gen = flatten(genai.price_to_spec(genai.conditional_prices(model)[0][1]))
        for path in sorted(lite.keys() & gen.keys()):
            if lite[path] != gen[path]:
                record.decisions.append(
                    Decision(entry["id"], path, label, lite[path], gen[path], LITELLM_SOURCE, "time-of-day")
                )
        return
    gen = flatten(genai_spec(model, prices, as_of, bool(entry.get("inclusive_thresholds"))))
    compatible = zone_compatible(entry["provider"], entry["model"], label)
    changed = False
    for path in sorted(lite.keys() & gen.keys()):
        if change is not None and now[path] != gen[path]:
            raise PriceChangeError(
                f"{entry['id']} {path}: review {change.id} gives {now[path]} from its change, "
                f"genai-prices {gen[path]}"
            )
        if lite[path] == gen[path]:
            record.agreed += 1
            continue
        if change is not None:  # decided by the change's review; the figure is already the spec's
            record.decisions.append(
                Decision(entry["id"], path, label, lite[path], gen[path], GENAI_SOURCE, review=change.id)
            )
            record.reviews_used[change.id] += 1
            continue
        decision = _decide(entry, path, label, (lite[path], gen[path]), kind, compatible, reviews)
        record.decisions.append(decision)
        if decision.review:
            record.reviews_used[decision.review] += 1
        if decision.source == GENAI_SOURCE:
            put_rate(spec, path, decision.genai)
            changed = True
    record.litellm_only_rates += len(lite.keys() - gen.keys())
    only_genai = sorted(gen.keys() - lite.keys())
    if kind == "family" or not compatible:
        record.genai_only_rates_not_added += len(only_genai)
        return
    for path in only_genai:
        tier = path.partition(":")[0] if ":" in path else None
        if tier and tier not in spec.get("service_tiers", {}) and f"{tier}:input" not in gen:
            record.genai_only_rates_not_added += 1  # a tier without an input rate is not a tier
            continue
        put_rate(spec, path, gen[path])
        record.added.append((entry["id"], path, label, gen[path]))
        changed = True
    if changed:
        spec["source"] = f"{spec.get('source', LITELLM_SOURCE)}+{GENAI_SOURCE}"


def reconcile_entries(
    entries: list[dict[str, Any]],
    providers: Mapping[str, Mapping[str, Any]],
    genai_provider_of: Mapping[str, str],
    as_of: date,
    record: Reconciliation,
    reviews: Sequence[Review] = REVIEWS,
) -> None:
    """Compare every LiteLLM entry with genai-prices and apply the decisions in place.

    ``genai_provider_of`` maps a spendgate provider to the genai-prices provider that
    prices it. A review's price change in force on ``as_of`` is applied first (the entry
    gets its dated spec), so the comparison is with the price in force.
    """
    for entry in entries:
        change = _apply_change(entry, as_of, record, reviews)
        genai_provider = genai_provider_of.get(entry["provider"])
        if genai_provider is None:
            record.models_litellm_only["(provider not in genai-prices)"] += 1
            continue
        own = genai.find_model(providers, genai_provider, entry["model"], fallback=False)
        model = own or genai.find_model(providers, genai_provider, entry["model"])
        snapshot = None
        if model is None and (stripped := _SNAPSHOT.sub("", entry["model"])) != entry["model"]:
            snapshot = genai.find_model(providers, genai_provider, stripped, fallback=False)
        if model is None and snapshot is None:
            record.models_litellm_only[entry["provider"]] += 1
            continue
        if model is not None:
            kind = match_kind(model, entry["model"]) if own is not None else "family"
        else:
            assert snapshot is not None
            model = snapshot
            kind = "snapshot" if match_kind(snapshot, entry["model"]) != "family" else "family"
        _reconcile_entry(entry, model, kind, as_of, record, reviews, change)

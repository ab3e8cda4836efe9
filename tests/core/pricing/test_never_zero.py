"""Never $0 for priced usage (issue #16, item 1), over the whole bundled catalogue.

For every entry, every price spec in its history, every service tier it declares and every
rate it declares (base, long-context thresholds, range tiers), a usage with a positive
quantity of what that rate prices must cost more than $0 when the rate is not zero; when
the declared rate is zero, the result may be priced above $0 by another declared rate or
be *unpriced* with a reason, but never a priced $0 (unless the entry is declared free).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cache, partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.catalogue.bundled import bundled_catalogue
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import calculate
from spendgate.core.pricing.spec import RATE_FIELDS, ModelEntry, PriceSpec, Rates
from spendgate.core.usage.model import Usage

D = Decimal

# What a positive quantity n of each per-token rate is, as usage fields.
_TOKENS: dict[str, Callable[[int], dict[str, Any]]] = {
    "input": lambda n: {"input_tokens": n},
    "output": lambda n: {"output_tokens": n},
    "cache_read": lambda n: {"input_tokens": n, "cache_read_tokens": n},
    "cache_write": lambda n: {"input_tokens": n, "cache_write_tokens": n},
    "cache_write_1h": lambda n: {"input_tokens": n, "cache_write_tokens": n, "cache_write_1h_tokens": n},
    "reasoning": lambda n: {"output_tokens": n, "reasoning_tokens": n},
    "input_audio": lambda n: {"input_tokens": n, "input_audio_tokens": n},
    "cache_read_audio": lambda n: {
        "input_tokens": n,
        "cache_read_tokens": n,
        "input_audio_tokens": n,
        "cache_read_audio_tokens": n,
    },
    "input_image": lambda n: {"input_tokens": n, "input_image_tokens": n},
    "input_video": lambda n: {"input_tokens": n, "input_video_tokens": n},
    "output_audio": lambda n: {"output_tokens": n, "output_audio_tokens": n},
    "output_image": lambda n: {"output_tokens": n, "output_image_tokens": n},
    "output_video": lambda n: {"output_tokens": n, "output_video_tokens": n},
}
# ... and of each per-unit rate (seconds are a Decimal, drawn separately).
_UNITS: dict[str, Callable[[int], dict[str, Any]]] = {
    "input_per_character": lambda n: {"input_characters": n},
    "output_per_character": lambda n: {"output_characters": n},
    "input_per_image": lambda n: {"input_images": n},
    "output_per_image": lambda n: {"images": n},
    "input_per_query": lambda n: {"queries": n},
}
_SECONDS = ("per_second", "input_per_second", "output_per_second")
assert set(_TOKENS) | set(_UNITS) | set(_SECONDS) == set(RATE_FIELDS)

Case = tuple[ModelEntry, PriceSpec, str | None, str, Decimal, Callable[[int, Decimal], dict[str, Any]]]
"""(entry, spec, service tier, what, declared rate, usage fields from (n, seconds))."""


def _variant_usage(key: str) -> dict[str, Any]:
    quality, _, size = key.rpartition("/")
    return {"image_size": size, "image_quality": quality or None}


Maker = Callable[[int, Decimal], dict[str, Any]]


def _made(make: Callable[[int], dict[str, Any]], floor: int, n: int, seconds: Decimal) -> dict[str, Any]:
    fields = make(n)
    if floor:
        fields["input_tokens"] = fields.get("input_tokens", 0) + floor
    return fields


def _made_seconds(floor: int, n: int, seconds: Decimal) -> dict[str, Any]:
    return {"seconds": seconds, **({"input_tokens": floor} if floor else {})}


def _counted(count: str, extra: dict[str, Any], n: int) -> dict[str, Any]:
    return {count: n, **extra}


def _rate_cases(rates: Rates, floor: int) -> Iterator[tuple[str, Decimal, Maker]]:
    """Every rate declared in ``rates``, with a usage of it; ``floor`` prompt tokens put
    the request in the level (threshold or range tier) the rates belong to."""
    for name in RATE_FIELDS:
        value = getattr(rates, name)
        if value is None:
            continue
        if name in _TOKENS or name in _UNITS:
            yield name, value, partial(_made, _TOKENS.get(name) or _UNITS[name], floor)
        else:
            yield name, value, partial(_made_seconds, floor)
    for key, value in rates.image_variants.items():
        yield f"image {key}", value, partial(_made, partial(_counted, "images", _variant_usage(key)), floor)
    for size, value in rates.web_search.items():
        extra = {"search_context_size": size}
        yield (
            f"web search {size}",
            value,
            partial(_made, partial(_counted, "web_search_requests", extra), floor),
        )


def _spec_cases(spec: PriceSpec) -> Iterator[tuple[str, Decimal, Maker]]:
    yield from _rate_cases(spec.rates, 0)
    for t in spec.thresholds:
        for name, value, make in _rate_cases(t.rates, t.above + 1):
            yield f"{name} above {t.above}", value, make
    for i, tier in enumerate(spec.tiers):
        for name, value, make in _rate_cases(tier.rates, tier.start + 1 if tier.start or i else 0):
            yield f"{name} in range tier {i}", value, make


@cache
def _cases() -> tuple[Case, ...]:
    cases: list[Case] = []
    for entry in bundled_catalogue():
        for spec in entry.prices:
            for name, value, make in _spec_cases(spec):
                cases.append((entry, spec, None, name, value, make))
            for tier, sub in spec.service_tiers.items():
                for name, value, make in _spec_cases(sub):
                    cases.append((entry, spec, tier, name, value, make))
    return tuple(cases)


def _price(entry: ModelEntry, spec: PriceSpec, tier: str | None, usage: Usage) -> CostBreakdown:
    return calculate(
        spec,
        usage,
        entry.id,
        entry.id,
        entry.provider,
        entry.mode,
        tier,
        spec.effective_from,
        entry.inclusive_thresholds,
        None,
        "test",
        "bundled",
        entry.free,
    )


def _failures(n: int, seconds: Decimal) -> list[str]:
    failures = []
    for entry, spec, tier, name, value, make in _cases():
        usage = Usage(**make(n, seconds))
        b = _price(entry, spec, tier, usage)
        where = f"{entry.id} [{tier or 'standard'}] {name}={value} usage={make(n, seconds)}"
        if value and not (b.priced and b.total > 0):
            failures.append(f"{where}: priced={b.priced} total={b.total} ({b.unpriced_reason})")
        elif not value and b.priced and b.total == 0 and not entry.free:
            failures.append(f"{where}: a zero rate priced at $0 instead of unpriced")
        elif not b.priced and not b.unpriced_reason:
            failures.append(f"{where}: unpriced without a reason")
    return failures


def test_the_whole_catalogue_is_swept() -> None:
    # The sweep covers every entry that declares a price: no entry is silently skipped.
    entries = {entry.id for entry, *_ in _cases()}
    assert len(entries) == len(bundled_catalogue()) > 5000
    assert len(_cases()) > 20_000


def test_smallest_quantity_of_every_declared_rate_costs_more_than_zero() -> None:
    failures = _failures(1, D("0.001"))
    assert not failures, f"{len(failures)} cases, e.g.:\n" + "\n".join(failures[:25])


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=10**9),
    seconds=st.decimals(min_value=D("0.001"), max_value=D(10**6), places=3),
)
def test_every_positive_quantity_of_every_declared_rate_costs_more_than_zero(
    n: int, seconds: Decimal
) -> None:
    failures = _failures(n, seconds)
    assert not failures, f"{len(failures)} cases, e.g.:\n" + "\n".join(failures[:25])

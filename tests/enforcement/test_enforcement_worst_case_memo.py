"""The kept worst cases (``estimate.target_worst_case`` for a ``KeyedTarget``) equal the ones
computed afresh: over the bundled catalogue, every service tier, with and without
adjustments, at any moment; price history and off-peak windows are never kept; a new book
is a new key; the memo steps aside when it misses and still answers the same."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.catalogue.bundled import bundled_catalogue
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import Adjustment
from spendgate.core.pricing.catalogue import Catalogue, PriceBook
from spendgate.core.pricing.spec import ModelEntry
from spendgate.core.usage.model import Usage
from spendgate.costs import price
from spendgate.enforcement import estimate
from spendgate.enforcement.estimate import target_worst_case

BOOK = PriceBook([bundled_catalogue()])
ENTRIES = sorted(bundled_catalogue(), key=lambda e: e.id)
TIMELESS = [e for e in ENTRIES if len(e.prices) == 1 and e.prices[0].effective_from is None]
HISTORY = [e for e in ENTRIES if len(e.prices) > 1 and all(p.off_peak is None for p in e.prices)]
OFF_PEAK = [e for e in ENTRIES if any(p.off_peak is not None for p in e.prices)]
TIERS = (None, "batch", "flex", "priority")


@dataclass(eq=False)
class Plain:
    """A target as the gateway's ``Deployment`` is one: a model and provider priced from a
    book with an adjustment. Its worst cases are not kept (no ``worst_case_key``)."""

    price_model: str
    price_provider: str
    book: PriceBook
    adjustment: Adjustment | None = None

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown:
        return price(
            self.price_model,
            usage,
            provider=self.price_provider,
            service_tier=served_tier or requested_tier,
            at=at,
            book=self.book,
            adjustment=self.adjustment,
        )


@dataclass(eq=False)
class Keyed(Plain):
    """The same target, naming what its prices depend on: its worst cases are kept."""

    @property
    def worst_case_key(self) -> Hashable:
        return (self.price_model, self.price_provider, self.book, self.adjustment)


@pytest.fixture(autouse=True)
def empty_memo() -> Iterator[None]:
    estimate._MEMO.clear()
    estimate._MEMO_STATS[:] = [0, 0]
    yield
    estimate._MEMO.clear()
    estimate._MEMO_STATS[:] = [0, 0]


def _pair(
    entry: ModelEntry, book: PriceBook = BOOK, adjustment: Adjustment | None = None
) -> tuple[Plain, Keyed]:
    return (
        Plain(entry.id, entry.provider, book, adjustment),
        Keyed(entry.id, entry.provider, book, adjustment),
    )


_adjustments = st.one_of(
    st.none(),
    st.builds(
        Adjustment,
        discount=st.sampled_from([Decimal(0), Decimal("0.05"), Decimal("0.5")]),
        margin=st.sampled_from([Decimal(0), Decimal("0.1"), Decimal("0.25")]),
        margin_fixed=st.sampled_from([Decimal(0), Decimal("0.000001")]),
    ),
)
_moments = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
)


@settings(max_examples=400, deadline=None)
@given(
    entry=st.sampled_from(ENTRIES),
    tier=st.sampled_from(TIERS),
    prompt=st.one_of(st.integers(0, 300), st.integers(0, 2_000_000)),
    output=st.one_of(st.integers(0, 100), st.integers(0, 200_000)),
    adjustment=_adjustments,
    at=_moments,
)
def test_a_kept_worst_case_equals_the_computed_one(
    entry: ModelEntry,
    tier: str | None,
    prompt: int,
    output: int,
    adjustment: Adjustment | None,
    at: datetime | None,
) -> None:
    plain, keyed = _pair(entry, adjustment=adjustment)
    expected = target_worst_case(plain, prompt, output, service_tier=tier, at=at)
    first = target_worst_case(keyed, prompt, output, service_tier=tier, at=at)
    hits = estimate._MEMO_STATS[0]
    again = target_worst_case(keyed, prompt, output, service_tier=tier, at=at)  # kept, if it may be
    assert first == again == expected
    timeless = len(entry.prices) == 1 and entry.prices[0].effective_from is None
    assert estimate._MEMO_STATS[0] == hits + (timeless and entry.prices[0].off_peak is None)
    assert isinstance(again, int)


@settings(max_examples=100, deadline=None)
@given(
    entry=st.sampled_from(TIMELESS),
    tier=st.sampled_from(TIERS),
    shapes=st.lists(st.tuples(st.integers(0, 400_000), st.integers(0, 70_000)), min_size=1, max_size=8),
)
def test_many_shapes_kept_together_each_equal_their_own(
    entry: ModelEntry, tier: str | None, shapes: list[tuple[int, int]]
) -> None:
    plain, keyed = _pair(entry)
    for _ in range(2):
        for prompt, output in shapes:
            assert target_worst_case(keyed, prompt, output, service_tier=tier) == target_worst_case(
                plain, prompt, output, service_tier=tier
            )


def test_the_kept_value_is_what_a_hit_returns() -> None:
    """(So the equality tests above compare kept values, not two computations.)"""
    entry = next(e for e in TIMELESS if e.id == "openai/gpt-4o")
    _, keyed = _pair(entry)
    worst = target_worst_case(keyed, 1000, 200)
    assert worst > 0
    (key,) = estimate._MEMO
    assert estimate._MEMO[key] == worst
    estimate._MEMO[key] = 123  # a hit returns the kept value, whatever it is
    assert target_worst_case(keyed, 1000, 200) == 123
    assert target_worst_case(keyed, 1001, 200) != 123
    assert target_worst_case(keyed, 1000, 200, service_tier="priority") != 123


def test_a_price_with_history_is_never_kept() -> None:
    entry = HISTORY[0]
    plain, keyed = _pair(entry)
    changes = sorted(p.effective_from for p in entry.prices if p.effective_from is not None)
    moments = [None] + [c + d for c in changes for d in (timedelta(seconds=-1), timedelta(0))]
    for at in moments:
        assert target_worst_case(keyed, 50_000, 4_000, at=at) == target_worst_case(
            plain, 50_000, 4_000, at=at
        )
    assert estimate._MEMO == {}


@pytest.mark.parametrize("entry", OFF_PEAK, ids=lambda e: e.id)
def test_an_off_peak_price_is_never_kept(entry: ModelEntry) -> None:
    plain, keyed = _pair(entry)
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    for hour in range(0, 24 * 7, 5):  # on and off peak
        at = start + timedelta(hours=hour, minutes=30)
        assert target_worst_case(keyed, 9_000, 800, at=at) == target_worst_case(plain, 9_000, 800, at=at)
    assert estimate._MEMO == {}


def test_a_new_book_is_a_new_key() -> None:
    entry = next(e for e in TIMELESS if e.id == "openai/gpt-4o")
    _, keyed = _pair(entry)
    before = target_worst_case(keyed, 1000, 200)
    layer = Catalogue.from_dict(
        {
            "format": "spendgate-catalogue/1",
            "version": "operator-1",
            "models": [
                {
                    "id": "openai/gpt-4o",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "prices": [{"rates": {"input": "0.0001", "output": "0.001"}}],
                }
            ],
        },
        name="operator",
    )
    keyed.book = BOOK.with_layer(layer)
    after = target_worst_case(keyed, 1000, 200)
    assert after == 1000 * 100_000 + 200 * 1_000_000 != before
    assert after == target_worst_case(Plain("openai/gpt-4o", "openai", keyed.book), 1000, 200)


def test_the_memo_steps_aside_when_it_misses_and_answers_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "_MEMO_SIZE", 16)
    monkeypatch.setattr(estimate, "_MEMO_PAUSE", 40)
    entry = next(e for e in TIMELESS if e.id == "openai/gpt-4o")
    plain, keyed = _pair(entry)
    for prompt in range(100):  # every call a new shape: the memo fills, then steps aside
        assert target_worst_case(keyed, prompt, 10) == target_worst_case(plain, prompt, 10)
    assert estimate._MEMO_STATS[1] > 0
    assert len(estimate._MEMO) <= 16
    for _ in range(60):  # the pause ends; the memo keeps values again
        assert target_worst_case(keyed, 7, 10) == target_worst_case(plain, 7, 10)
    assert estimate._MEMO_STATS[1] == 0 and estimate._MEMO


def test_counts_that_are_not_plain_ints_are_computed_as_before() -> None:
    entry = next(e for e in TIMELESS if e.id == "openai/gpt-4o")
    plain, keyed = _pair(entry)
    assert target_worst_case(keyed, True, 10) == target_worst_case(plain, True, 10)
    with pytest.raises(ValueError):
        target_worst_case(keyed, -5, 10)
    assert estimate._MEMO == {}

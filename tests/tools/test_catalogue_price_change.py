"""Dated price changes in the catalogue build: a review's published price from a moment on,
every other rate composed from it (tools/catalogue/reconcile.py, ``compose_change``).

The figures are typed in by hand: a model sold at an introductory $2/$10 (cached $0.10,
batch half, priority 1.8x) whose price doubles from 2026-12-01, as Gemini 4 Argon's did.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from tools.catalogue import genai
from tools.catalogue.reconcile import (
    PriceChangeError,
    Reconciliation,
    compose_change,
    flatten,
    reconcile_entries,
)
from tools.catalogue.reviews import PriceChange, Review

D = Decimal
START = datetime(2026, 12, 1, tzinfo=UTC)
DOUBLED = PriceChange(
    start=START,
    rates={"input": D("4E-6"), "output": D("2E-5"), "reasoning": D("2E-5")},
    url="https://example.test/model-page",
    keep="web_search.*",
)
SEARCH = {"low": D("0.014"), "medium": D("0.014"), "high": D("0.014")}


def _introductory() -> dict[str, Any]:
    """LiteLLM's spec of the model: the introductory rates only."""
    return {
        "rates": {
            "input": D("2E-6"),
            "output": D("1E-5"),
            "cache_read": D("1E-7"),
            "reasoning": D("1E-5"),
            "input_audio": D("2E-6"),
            "web_search": dict(SEARCH),
        },
        "service_tiers": {
            "batch": {
                "rates": {
                    "input": D("1E-6"),
                    "output": D("5E-6"),
                    "cache_read": D("5E-8"),
                    "input_audio": D("1E-6"),
                }
            },
            "flex": {"rates": {"input": D("1E-6"), "output": D("5E-6"), "cache_read": D("5E-8")}},
            "priority": {"rates": {"input": D("3.6E-6"), "output": D("1.8E-5"), "cache_read": D("1.8E-7")}},
        },
        "source": "litellm",
    }


def test_every_rate_follows_the_published_change() -> None:
    later = compose_change(_introductory(), DOUBLED, "gem-x")
    assert later["from"] == "2026-12-01T00:00:00+00:00"
    assert flatten(later) == {
        # published
        "input": D("4E-6"),
        "output": D("2E-5"),
        "reasoning": D("2E-5"),
        # composed: cached and audio input follow input (x2)
        "cache_read": D("2E-7"),
        "input_audio": D("4E-6"),
        # not a per-token rate, kept as the change says
        "web_search.low": D("0.014"),
        "web_search.medium": D("0.014"),
        "web_search.high": D("0.014"),
        # each tier's rate follows the same kind's standard rate: batch and flex stay half,
        # priority stays 1.8x, of the new price
        "batch:input": D("2E-6"),
        "batch:output": D("1E-5"),
        "batch:cache_read": D("1E-7"),
        "batch:input_audio": D("2E-6"),
        "flex:input": D("2E-6"),
        "flex:output": D("1E-5"),
        "flex:cache_read": D("1E-7"),
        "priority:input": D("7.2E-6"),
        "priority:output": D("3.6E-5"),
        "priority:cache_read": D("3.6E-7"),
    }


def test_thresholds_compose_and_an_inexact_ratio_keeps_28_digits() -> None:
    earlier = {
        "rates": {"input": D("3E-6"), "output": D("1.5E-5"), "cache_read": D("1E-7")},
        "thresholds": [{"above": 200000, "rates": {"input": D("6E-6"), "output": D("2.25E-5")}}],
        "service_tiers": {
            "batch": {
                "rates": {"input": D("1.5E-6")},
                "thresholds": [{"above": 200000, "rates": {"input": D("3E-6")}}],
            }
        },
    }
    change = PriceChange(start=START, rates={"input": D("4E-6"), "output": D("2E-5")}, url="u")
    got = flatten(compose_change(earlier, change, "m"))
    # the long-context premium stays 2x input and 1.5x output of the new price
    assert (got[">200000.input"], got[">200000.output"]) == (D("8E-6"), D("3E-5"))
    # a tier's threshold rate follows the standard rate above the same threshold
    assert (got["batch:input"], got["batch:>200000.input"]) == (D("2E-6"), D("4E-6"))
    # 1E-7 x 4/3: the ratio does not terminate, so 28 significant digits
    assert got["cache_read"] == D("1.333333333333333333333333333E-7")


def test_what_the_rule_cannot_compose_stops_the_build() -> None:
    without_keep = PriceChange(start=START, rates=DOUBLED.rates, url="u")
    with pytest.raises(PriceChangeError, match=r"web_search\.high is not a per-token rate"):
        compose_change(_introductory(), without_keep, "gem-x")
    with pytest.raises(PriceChangeError, match="input and output"):
        compose_change(
            _introductory(), PriceChange(start=START, rates={"input": D("4E-6")}, url="u"), "gem-x"
        )
    free_input: dict[str, Any] = {"rates": {"input": D(0), "output": D("1E-5"), "cache_read": D("1E-7")}}
    with pytest.raises(PriceChangeError, match="cache_read has no earlier input rate"):
        compose_change(free_input, DOUBLED, "gem-x")


# ----------------------------------------------------------------------------- in the build

GENAI_DATA = """
providers = [
    Provider(id='google', models=[
        ModelInfo(id='gem-x', match=ClauseEquals(equals='gem-x'),
            prices=[
                ConditionalPrice(prices=ModelPrice(input_mtok=Decimal('2'), cache_read_mtok=Decimal('0.1'),
                    output_mtok=Decimal('10'), web_searches_kcount=Decimal('14'))),
                ConditionalPrice(constraint=StartDateConstraint(start_date=datetime.date(2026, 12, 1)),
                    prices=ModelPrice(input_mtok=Decimal('4'), cache_read_mtok=Decimal('0.2'),
                        output_mtok=Decimal('20'), web_searches_kcount=Decimal('14'))),
            ],
            price_variants=[
                PriceVariant(when={'processing': 'batch'},
                    prices=ModelPrice(input_mtok=Decimal('2'), cache_read_mtok=Decimal('0.1'),
                        output_mtok=Decimal('10')),
                    constraint=StartDateConstraint(start_date=datetime.date(2026, 12, 1))),
                PriceVariant(when={'processing': 'batch'},
                    prices=ModelPrice(input_mtok=Decimal('1'), cache_read_mtok=Decimal('0.05'),
                        output_mtok=Decimal('5'))),
            ]),
    ]),
]
"""


def _reconcile(as_of: date, change: PriceChange = DOUBLED) -> tuple[dict[str, Any], Reconciliation]:
    providers = {p["id"]: p for p in genai.load_providers(GENAI_DATA)}
    entry = {"id": "gemini/gem-x", "provider": "gemini", "model": "gem-x", "prices": [_introductory()]}
    record = Reconciliation()
    reviews = (Review("gem-x-price", "gemini/gem-x", "genai-prices", "published page", change=change),)
    reconcile_entries([entry], providers, {"gemini": "google"}, as_of, record, reviews)
    return entry, record


def test_a_change_in_force_gives_the_entry_a_history_and_decides_the_disagreements() -> None:
    entry, record = _reconcile(date(2026, 12, 6))
    earlier, later = entry["prices"]
    assert earlier == _introductory()  # LiteLLM's spec, as the price until the change
    assert later["from"] == "2026-12-01T00:00:00+00:00"
    assert later["source"] == "litellm+review:gem-x-price"
    assert flatten(later) == flatten(compose_change(_introductory(), DOUBLED, "gem-x"))
    decided = {d.rate: (d.litellm, d.taken, d.source, d.reason) for d in record.decisions}
    assert decided == {
        "input": (D("2E-6"), D("4E-6"), "genai-prices", "gem-x-price"),
        "output": (D("1E-5"), D("2E-5"), "genai-prices", "gem-x-price"),
        "cache_read": (D("1E-7"), D("2E-7"), "genai-prices", "gem-x-price"),
        "batch:input": (D("1E-6"), D("2E-6"), "genai-prices", "gem-x-price"),
        "batch:output": (D("5E-6"), D("1E-5"), "genai-prices", "gem-x-price"),
        "batch:cache_read": (D("5E-8"), D("1E-7"), "genai-prices", "gem-x-price"),
    }
    assert record.agreed == 3  # the three web-search sizes, $14/1k before and after
    assert record.price_changes == [("gemini/gem-x", "gem-x-price")]
    counts = record.counts()
    assert (counts["decided_by_review"], counts["unreviewed_litellm_kept"]) == (6, 0)


def test_a_change_not_yet_in_force_is_not_applied() -> None:
    entry, record = _reconcile(date(2026, 11, 15))
    assert entry["prices"] == [_introductory()]
    assert record.decisions == [] and record.price_changes == []  # both sources: introductory


def test_a_composed_figure_genai_prices_contradicts_stops_the_build() -> None:
    wrong = PriceChange(
        start=START, rates={"input": D("3E-6"), "output": D("2E-5")}, url="u", keep="web_search.*"
    )
    with pytest.raises(PriceChangeError, match=r"gemini/gem-x batch:cache_read: review gem-x-price gives"):
        _reconcile(date(2026, 12, 6), wrong)

"""Gemini 4 Argon's dated price change in the bundled catalogue (review
``gemini-4-argon-2026-12-01`` in tools/catalogue/reviews.py).

Google's model page: introductory $2 input / $10 output per 1M tokens until 2026-11-30,
then $4 / $20 (a date only, so from 2026-12-01 00:00 UTC). Cached input $0.10 then $0.20;
thinking tokens are billed as output; batch and flex at half, priority at 1.8x; Google
Search grounding $14 per 1,000 calls. The expected costs below are computed by hand from
those published figures, not from the catalogue.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import spendgate
from spendgate.catalogue.bundled import bundled_catalogue
from spendgate.core.usage import Usage

D = Decimal
RECONCILIATION = (
    Path(__file__).resolve().parents[2] / "src" / "spendgate" / "catalogue" / "data" / "reconciliation.json"
)
MTOK = D(1_000_000)
# $ per 1M tokens, standard tier
INTRODUCTORY = {"input": D(2), "cache_read": D("0.10"), "output": D(10)}
FROM_DEC_1 = {"input": D(4), "cache_read": D("0.20"), "output": D(20)}
TIER = {None: D(1), "batch": D("0.5"), "flex": D("0.5"), "priority": D("1.8")}
SEARCH_CALL = D(14) / 1000

# every token kind the model bills: cached and audio input ⊂ input, reasoning ⊂ output
USAGE = Usage(
    input_tokens=200_000,
    cache_read_tokens=50_000,
    input_audio_tokens=20_000,
    output_tokens=40_000,
    reasoning_tokens=15_000,
    web_search_requests=3,
)
AFTER = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
BEFORE = datetime(2026, 11, 15, 9, 30, tzinfo=UTC)


def _expected(prices: dict[str, Decimal], tier: str | None, audio_factor: Decimal) -> dict[str, Decimal]:
    f = TIER[tier]
    return {
        "input": 130_000 * prices["input"] * f / MTOK,  # 200k - 50k cached - 20k audio
        "cache_read": 50_000 * prices["cache_read"] * f / MTOK,
        "input_audio": 20_000 * prices["input"] * audio_factor / MTOK,  # audio at the input price
        "output": 25_000 * prices["output"] * f / MTOK,
        "reasoning": 15_000 * prices["output"] * f / MTOK,  # thinking tokens are output tokens
        "tools": 3 * SEARCH_CALL,
    }


def _items(model: str, tier: str | None, at: datetime | None) -> dict[str, Decimal]:
    b = spendgate.price(model, USAGE, service_tier=tier, at=at)
    assert b.priced and b.resolved_model == model, b
    items = {k: getattr(b, k) for k in ("input", "cache_read", "input_audio", "output", "reasoning", "tools")}
    assert b.total == sum(items.values())
    return items


@pytest.mark.parametrize("tier", [None, "batch", "flex", "priority"])
@pytest.mark.parametrize(("when", "prices"), [(AFTER, FROM_DEC_1), (BEFORE, INTRODUCTORY)])
def test_gemini_api_call_pays_the_price_in_force_on_its_date(
    tier: str | None, when: datetime, prices: dict[str, Decimal]
) -> None:
    # the Gemini API entry has no audio rate of its own: audio pays the tier's input rate
    assert _items("gemini/gemini-4-argon", tier, when) == _expected(prices, tier, TIER[tier])


@pytest.mark.parametrize("tier", [None, "batch", "flex", "priority"])
@pytest.mark.parametrize(("when", "prices"), [(AFTER, FROM_DEC_1), (BEFORE, INTRODUCTORY)])
def test_vertex_ai_call_pays_the_price_in_force_on_its_date(
    tier: str | None, when: datetime, prices: dict[str, Decimal]
) -> None:
    # LiteLLM gives Vertex AI's entry audio rates for batch and priority but not flex; a rate a
    # tier does not declare is the standard one (core/pricing/table.py, step 2)
    audio_factor = D(1) if tier == "flex" else TIER[tier]
    assert _items("vertex_ai/gemini-4-argon", tier, when) == _expected(prices, tier, audio_factor)


def test_the_change_applies_from_midnight_utc_on_december_1() -> None:
    last = spendgate.price("gemini-4-argon", USAGE, at=datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC))
    first = spendgate.price("gemini-4-argon", USAGE, at=datetime(2026, 12, 1, tzinfo=UTC))
    assert last.resolved_model == first.resolved_model == "gemini/gemini-4-argon"
    assert (last.total, first.total) == (
        sum(_expected(INTRODUCTORY, None, D(1)).values()),
        sum(_expected(FROM_DEC_1, None, D(1)).values()),
    )
    # a call priced now (after the change) pays the new price
    assert spendgate.price("gemini-4-argon", USAGE).total == first.total


def test_priority_pays_the_new_price_on_each_token_kind() -> None:
    """1M tokens of one kind at a time against the published per-1M figures x 1.8."""
    for tokens, kind, per_mtok in [
        (Usage(input_tokens=1_000_000), "input", D("7.2")),
        (Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000), "cache_read", D("0.36")),
        (Usage(output_tokens=1_000_000), "output", D(36)),
        (Usage(output_tokens=1_000_000, reasoning_tokens=1_000_000), "reasoning", D(36)),
    ]:
        b = spendgate.price("gemini-4-argon", tokens, service_tier="priority", at=AFTER)
        assert getattr(b, kind) == b.total == per_mtok, kind


@pytest.mark.parametrize("entry_id", ["gemini/gemini-4-argon", "vertex_ai/gemini-4-argon"])
def test_the_entries_carry_the_dated_history_and_the_review_records_its_evidence(entry_id: str) -> None:
    entry = bundled_catalogue().find(entry_id)
    assert entry is not None
    introductory, current = entry.prices
    assert introductory.effective_from is None and introductory.source == "litellm"
    assert current.effective_from == datetime(2026, 12, 1, tzinfo=UTC)
    assert current.source == "litellm+review:gemini-4-argon-2026-12-01"
    document = json.loads(RECONCILIATION.read_text(encoding="utf-8"))
    (review,) = [r for r in document["reviews"] if r["id"] == "gemini-4-argon-2026-12-01"]
    assert entry_id in review["entries"]
    change = review["price_change"]
    assert change["from"] == "2026-12-01T00:00:00+00:00"
    assert change["rates"] == {"input": "4E-6", "output": "2E-5", "reasoning": "2E-5"}
    assert change["source"].startswith("https://ai.google.dev/gemini-api/docs/generate-content/latest-model")
    rows = [d for d in document["disagreements"] if d["entry"] == entry_id]
    assert len(rows) == 6 and {d["reason"] for d in rows} == {"gemini-4-argon-2026-12-01"}

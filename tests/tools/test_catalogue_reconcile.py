"""Reconciliation of the two price sources: the rules, reviewed decisions, and drift.

The drift test rebuilds the catalogue, its reconciliation and NOTICE from the installed
``catalogue`` dependency group (pinned, hash-locked, no download) with the committed
date, and fails if any committed file differs: `make catalogue` must have been run.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from tools.catalogue import genai, sources
from tools.catalogue.build import NOTICE, OUTPUT, RECONCILIATION, build, committed_date
from tools.catalogue.reconcile import (
    Reconciliation,
    flatten,
    match_kind,
    normalise_litellm,
    per_hour,
    put_rate,
    reconcile_entries,
    shortest,
    zone_compatible,
)
from tools.catalogue.reviews import Review

from spendgate.catalogue.litellm_format import litellm_to_entries

D = Decimal


def test_committed_catalogue_and_reconciliation_match_a_rebuild() -> None:
    built = build(sources.from_installed(), committed_date())
    for path, text in built.outputs(OUTPUT, RECONCILIATION, NOTICE):
        assert path.read_text(encoding="utf-8") == text, f"{path.name} drifted: run `make catalogue`"


def test_sources_must_be_the_pinned_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "LITELLM_VERSION", "0.0.1")
    with pytest.raises(sources.SourceError, match="pins"):
        sources.from_installed()
    monkeypatch.setattr(sources, "COMPROMISED_LITELLM", frozenset({"1.109.1"}))
    with pytest.raises(sources.SourceError, match="compromised"):
        sources.from_installed()


# ----------------------------------------------------------------------------- figures


def test_float_artefacts_become_the_decimal_meant() -> None:
    assert shortest(D("1.0000000000000001E-7")) == D("1E-7")
    assert shortest(D("9.499999999999999E-7")) == D("9.5E-7")
    assert shortest(D("1E-7")) is None  # already short
    # exact, meaningful long decimals stay: 0.025 / 2**20 per pixel, CNY 8 / 7
    assert shortest(D("2.384185791015625E-8")) is None
    assert shortest(D("0.0000011428571428571428")) is None


def test_divided_per_hour_prices_are_stored_exactly() -> None:
    rate, note = per_hour(D("0.0002833333333333333")) or (D(0), "")
    assert note == "1.02 per hour" and rate * 3600 == D("1.020000000000000000000000000")
    rate, _ = per_hour(D("0.000033333333333333335")) or (D(0), "")
    assert (rate * 60).quantize(D("1E-9")) == D("0.002")
    assert per_hour(D("0.0001")) is None


def test_normalise_litellm_records_each_change() -> None:
    data, changes = normalise_litellm(
        {
            "m": {
                "input_cost_per_token": D("1.0000000000000001E-7"),
                "input_cost_per_second": D("0.0002833333333333333"),
                "tiered_pricing": [{"output_cost_per_token": D("2.0000000000000002E-7")}],
                "max_tokens": 10,
            }
        }
    )
    assert data["m"]["input_cost_per_token"] == D("1E-7")
    assert data["m"]["tiered_pricing"][0]["output_cost_per_token"] == D("2E-7")
    assert data["m"]["max_tokens"] == 10
    assert sorted((c.field, c.rule) for c in changes) == [
        ("input_cost_per_second", "per-hour"),
        ("input_cost_per_token", "float-artefact"),
        ("tiered_pricing[0].output_cost_per_token", "float-artefact"),
    ]


def test_rate_paths_round_trip() -> None:
    spec: dict[str, Any] = {"rates": {"input": D("1")}}
    for path, value in [
        ("output", D("2")),
        ("web_search.medium", D("3")),
        (">200000.input", D("4")),
        ("batch:input", D("5")),
        ("batch:>272000.output", D("6")),
    ]:
        put_rate(spec, path, value)
    assert flatten(spec) == {
        "input": D("1"),
        "output": D("2"),
        "web_search.medium": D("3"),
        ">200000.input": D("4"),
        "batch:input": D("5"),
        "batch:>272000.output": D("6"),
    }


# ----------------------------------------------------------------------------- matching


def test_regional_and_data_zone_variants_are_not_compared_with_global_prices() -> None:
    assert zone_compatible("bedrock", "anthropic.claude-sonnet-4-6", "regional.anthropic.claude-sonnet-4-6")
    assert zone_compatible(
        "bedrock", "us.anthropic.claude-sonnet-4-6", "regional.anthropic.claude-sonnet-4-6"
    )
    assert not zone_compatible("bedrock", "eu.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0")
    assert not zone_compatible(
        "bedrock", "us-gov.anthropic.claude-sonnet-5", "regional.anthropic.claude-sonnet-5"
    )
    assert not zone_compatible("bedrock", "eu-west-3/mistral.mistral-7b-instruct-v0:2", "mistral.mistral-7b")
    assert not zone_compatible("bedrock", "global.anthropic.x", "regional.anthropic.x")
    assert zone_compatible("bedrock", "global.anthropic.x", "global.anthropic.x")
    assert not zone_compatible("azure", "eu/o4-mini", "o4-mini")
    assert zone_compatible("azure", "o4-mini", "o4-mini")


def _model(model_id: str, clause: dict[str, Any]) -> dict[str, Any]:
    return {"id": model_id, "match": clause}


def test_match_kind() -> None:
    haiku = _model(
        "claude-3-5-haiku-latest", {"__type__": "ClauseStartsWith", "starts_with": "claude-3-5-haiku"}
    )
    assert match_kind(haiku, "claude-3-5-haiku-latest") == "exact"
    assert match_kind(haiku, "claude-3-5-haiku-20241022") == "snapshot"
    assert match_kind(haiku, "claude-3-5-haiku-turbo") == "family"
    flash = _model("gemini-2.0-flash", {"__type__": "ClauseStartsWith", "starts_with": "gemini-2.0-flash"})
    assert match_kind(flash, "gemini-2.0-flash-exp-image-generation") == "family"
    bedrock = _model(
        "regional.anthropic.claude-opus-4-6-v1:0",
        {"__type__": "ClauseContains", "contains": "anthropic.claude-opus-4-6-v1"},
    )
    assert match_kind(bedrock, "anthropic.claude-opus-4-6-v1") == "exact"


# ----------------------------------------------------------------------------- deciding

GENAI_DATA = """
providers = [
    Provider(id='openai', models=[
        ModelInfo(id='gpt-x', match=ClauseEquals(equals='gpt-x'),
            prices=ModelPrice(input_mtok=Decimal('2'), output_mtok=Decimal('8'),
                input_audio_mtok=Decimal('6'), cache_read_mtok=Decimal('0.5')),
            price_variants=[PriceVariant(when={'processing': 'batch'},
                prices=ModelPrice(input_mtok=Decimal('1'), output_mtok=Decimal('4')))]),
        ModelInfo(id='gpt-fam', match=ClauseStartsWith(starts_with='gpt-fam'),
            prices=ModelPrice(
                input_mtok=Decimal('1'), output_mtok=Decimal('1'), cache_read_mtok=Decimal('0.1')
            )),
        ModelInfo(id='whisper-y', match=ClauseEquals(equals='whisper-y'),
            prices=ModelPrice(audio_hours=Decimal('0.111'), input_audio_hours=Decimal('0.111'))),
    ]),
    Provider(id='aws', models=[
        ModelInfo(id='amazon.nova', match=ClauseContains(contains='amazon.nova'),
            prices=ModelPrice(input_mtok=Decimal('0.06'), output_mtok=Decimal('0.24'))),
    ]),
]
"""
LITELLM: dict[str, Any] = {
    "gpt-x": {
        "litellm_provider": "openai",
        "input_cost_per_token": D("2E-6"),
        "output_cost_per_token": D("1E-5"),
        "input_cost_per_audio_token": D("2E-6"),
    },
    "gpt-fam-large": {"litellm_provider": "openai", "input_cost_per_token": D("3E-6")},
    "whisper-y": {"litellm_provider": "openai", "input_cost_per_second": D("3.083E-5")},
    "bedrock/eu.amazon.nova": {"litellm_provider": "bedrock", "input_cost_per_token": D("7.8E-8")},
}
REVIEWS = (
    Review("audio", "openai/gpt-x", "genai-prices", "published audio price", rates="input_audio"),
    Review("never", "openai/other", "genai-prices", "matches nothing"),
)


@pytest.fixture
def reconciled() -> tuple[dict[str, dict[str, Any]], Reconciliation]:
    providers = {p["id"]: p for p in genai.load_providers(GENAI_DATA)}
    entries = litellm_to_entries(LITELLM, source="litellm")
    record = Reconciliation()
    reconcile_entries(
        entries, providers, {"openai": "openai", "bedrock": "aws"}, date(2026, 12, 1), record, REVIEWS
    )
    return {e["id"]: e for e in entries}, record


def test_each_disagreement_is_decided_by_a_rule_or_a_review(
    reconciled: tuple[dict[str, dict[str, Any]], Reconciliation],
) -> None:
    entries, record = reconciled
    decided = {(d.entry, d.rate): (d.source, d.reason, d.taken) for d in record.decisions}
    assert decided == {
        ("openai/gpt-x", "input_audio"): ("genai-prices", "audio", D("6E-6")),
        ("openai/gpt-x", "output"): ("litellm", "unreviewed", D("1E-5")),
        ("openai/gpt-fam-large", "input"): ("litellm", "family-match", D("3E-6")),
        ("openai/whisper-y", "input_per_second"): ("genai-prices", "rounded-conversion", D("0.111") / 3600),
        ("bedrock/eu.amazon.nova", "input"): ("litellm", "regional-variant", D("7.8E-8")),
    }
    gpt = flatten(entries["openai/gpt-x"]["prices"][-1])
    assert gpt["input_audio"] == D("6E-6") and gpt["output"] == D("1E-5")
    assert record.reviews_used == {"audio": 1}
    counts = record.counts()
    assert counts["disagreements"] == 5
    assert (counts["decided_by_rule"], counts["decided_by_review"], counts["unreviewed_litellm_kept"]) == (
        3,
        1,
        1,
    )


def test_rates_only_genai_prices_has_are_added_where_it_prices_the_name(
    reconciled: tuple[dict[str, dict[str, Any]], Reconciliation],
) -> None:
    entries, record = reconciled
    gpt = entries["openai/gpt-x"]["prices"][-1]
    rates = flatten(gpt)
    assert rates["cache_read"] == D("5E-7")
    assert (rates["batch:input"], rates["batch:output"]) == (D("1E-6"), D("4E-6"))
    assert "batch:cache_read" not in rates  # only the keys the variant itself declares
    assert gpt["source"] == "litellm+genai-prices"
    # a family match lends no rates: gpt-fam's cache price is not gpt-fam-large's
    assert "cache_read" not in flatten(entries["openai/gpt-fam-large"]["prices"][-1])
    assert {(e, r) for e, r, _, _ in record.added} == {
        ("openai/gpt-x", "cache_read"),
        ("openai/gpt-x", "batch:input"),
        ("openai/gpt-x", "batch:output"),
    }
    assert record.litellm_only_rates == 0


def test_reconciliation_file_counts_add_up() -> None:
    document = json.loads(RECONCILIATION.read_text(encoding="utf-8"))
    counts = document["counts"]
    assert counts["disagreements"] == len(document["disagreements"]) > 0
    assert (
        counts["decided_by_rule"] + counts["decided_by_review"] + counts["unreviewed_litellm_kept"]
        == counts["disagreements"]
    )
    reasons = set(document["rules"]) | {r["id"] for r in document["reviews"]} | {"unreviewed"}
    for row in document["disagreements"]:
        assert row["reason"] in reasons, row
        assert row["taken"] == (row["genai_prices"] if row["from"] == "genai-prices" else row["litellm"])
    assert counts["rates_only_genai_prices_added"] == len(document["added_from_genai_prices"])

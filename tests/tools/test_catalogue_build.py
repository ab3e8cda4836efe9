"""The catalogue build: genai-prices' data read without importing it, history, merging, output."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from tools.catalogue import genai
from tools.catalogue.build import (
    BuildReport,
    build_catalogue,
    dumps_catalogue,
    notice_text,
    same_prices,
)
from tools.catalogue.sources import mit_text

from spendgate.core.pricing.catalogue import Catalogue
from spendgate.core.pricing.spec import entry_from_dict

D = Decimal

DATA_PY = '''
"""DO NOT EDIT"""
import datetime
from decimal import Decimal

from .types import *

providers: list[Provider] = [
    Provider(
        id='anthropic',
        name='Anthropic',
        api_pattern='x',
        models=[
            ModelInfo(
                id='claude-opus-4-6',
                match=ClauseOr(
                    or_=[ClauseStartsWith(starts_with='claude-opus-4-6'), ClauseEquals(equals='opus')]
                ),
                context_window=1000000,
                prices=[
                    ConditionalPrice(
                        prices=ModelPrice(
                            input_mtok=TieredPrices(
                                base=Decimal('5'), tiers=[Tier(start=200000, price=Decimal('10'))]
                            ),
                            output_mtok=Decimal('25'),
                            web_searches_kcount=Decimal('10'),
                        )
                    ),
                    ConditionalPrice(
                        constraint=StartDateConstraint(start_date=datetime.date(2026, 3, 13)),
                        prices=ModelPrice(input_mtok=Decimal('5'), output_mtok=Decimal('25')),
                    ),
                    ConditionalPrice(
                        constraint=StartDateConstraint(start_date=datetime.date(2099, 1, 1)),
                        prices=ModelPrice(input_mtok=Decimal('1'), output_mtok=Decimal('2')),
                    ),
                ],
            ),
            ModelInfo(
                id='claude-mismatch',
                match=ClauseEquals(equals='claude-mismatch'),
                prices=[
                    ConditionalPrice(prices=ModelPrice(input_mtok=Decimal('1'), output_mtok=Decimal('2'))),
                    ConditionalPrice(
                        constraint=StartDateConstraint(start_date=datetime.date(2025, 1, 1)),
                        prices=ModelPrice(input_mtok=Decimal('3'), output_mtok=Decimal('4')),
                    ),
                ],
            ),
            ModelInfo(
                id='claude-new',
                match=ClauseOr(or_=[ClauseEquals(equals='claude-new'), ClauseEquals(equals='claude-new-1')]),
                prices=ModelPrice(
                    input_mtok=Decimal('0.15'),
                    cache_read_mtok=Decimal('0.015'),
                    output_mtok=Decimal('0.6'),
                    requests_kcount=Decimal('1'),
                ),
                price_variants=[
                    PriceVariant(
                        when={'processing': 'batch'}, prices=ModelPrice(input_mtok=Decimal('0.075'))
                    ),
                    PriceVariant(when={'service_tier': 'default'}, prices=ModelPrice()),
                ],
            ),
        ],
    ),
    Provider(
        id='deepseek',
        name='DeepSeek',
        api_pattern='x',
        models=[
            ModelInfo(
                id='deepseek-chat',
                match=ClauseEquals(equals='deepseek-chat'),
                prices=[
                    ConditionalPrice(
                        prices=ModelPrice(input_mtok=Decimal('0.135'), output_mtok=Decimal('0.55'))
                    ),
                    ConditionalPrice(
                        constraint=TimeOfDateConstraint(
                            start_time=datetime.time(0, 30, tzinfo=datetime.UTC),
                            end_time=datetime.time(16, 30, tzinfo=datetime.UTC),
                        ),
                        prices=ModelPrice(input_mtok=Decimal('0.27'), output_mtok=Decimal('1.1')),
                    ),
                ],
            ),
        ],
    ),
    Provider(id='openrouter', name='OpenRouter', api_pattern='x', models=[
        ModelInfo(
            id='meta/llama-free:free', match=ClauseEquals(equals='meta/llama-free:free'), prices=ModelPrice()
        ),
    ]),
]
'''

LITELLM: dict[str, Any] = {
    "claude-opus-4-6": {
        "litellm_provider": "anthropic",
        "input_cost_per_token": 5e-06,
        "output_cost_per_token": 2.5e-05,
        "input_cost_per_token_batches": 2.5e-06,
    },
    "claude-mismatch": {
        "litellm_provider": "anthropic",
        "input_cost_per_token": 9e-06,
        "output_cost_per_token": 9e-06,
    },
    "deepseek-chat": {
        "litellm_provider": "deepseek",
        "input_cost_per_token": 2.7e-07,
        "output_cost_per_token": 1.1e-06,
    },
}


@pytest.fixture(scope="module")
def providers() -> list[dict[str, Any]]:
    return genai.load_providers(DATA_PY)


def test_load_providers_reads_the_literal(providers: list[dict[str, Any]]) -> None:
    assert [p["id"] for p in providers] == ["anthropic", "deepseek", "openrouter"]
    opus = providers[0]["models"][0]
    assert opus["context_window"] == 1_000_000
    (constraint, prices), *_ = genai.conditional_prices(opus)
    assert constraint is None and prices["output_mtok"] == D("25")
    assert genai.conditional_prices(opus)[1][0]["start_date"] == date(2026, 3, 13)


def test_load_providers_runs_no_code() -> None:
    with pytest.raises(genai.GenaiDataError):
        genai.load_providers("providers = [__import__('os').system('true')]")
    with pytest.raises(genai.GenaiDataError):
        genai.load_providers("providers = [Provider(id=open('/etc/passwd').read())]")


def test_matching(providers: list[dict[str, Any]]) -> None:
    by_id = {p["id"]: p for p in providers}
    found = genai.find_model(by_id, "anthropic", "claude-opus-4-6-20260205")
    assert found is not None and found["id"] == "claude-opus-4-6"
    assert genai.find_model(by_id, "anthropic", "OPUS") is not None
    assert genai.find_model(by_id, "anthropic", "gpt-4o") is None


def test_price_to_spec_is_exact() -> None:
    spec = genai.price_to_spec(
        {
            "input_mtok": {
                "__type__": "TieredPrices",
                "base": D("1.25"),
                "tiers": [{"start": 200000, "price": D("2.5")}],
            },
            "cache_read_mtok": D("0.0028"),
            "output_mtok": D("10"),
            "input_mchars": D("0.5"),
            "web_searches_kcount": D("14"),
        }
    )
    r = spec["rates"]
    assert r["input"] == D("0.00000125") and r["cache_read"] == D("2.8E-9") and r["output"] == D("0.00001")
    assert r["input_per_character"] == D("5E-7")
    assert r["web_search"] == {"low": D("0.014"), "medium": D("0.014"), "high": D("0.014")}
    assert spec["thresholds"] == [{"above": 200000, "rates": {"input": D("0.0000025")}}]


def test_same_prices_is_strict() -> None:
    a = {"rates": {"input": D("5e-6"), "output": D("2.5e-5")}}
    assert same_prices(a, {"rates": {"input": "5E-6", "output": "2.5E-5", "cache_read": "5E-7"}})
    assert not same_prices(a, {"rates": {"input": "5E-6", "output": "3E-5"}})
    assert not same_prices(a, {"rates": {"input": "5E-6"}})
    assert not same_prices(
        a, {"rates": {"input": "5E-6", "output": "2.5E-5"}, "thresholds": [{"above": 1, "rates": {}}]}
    )


@pytest.fixture(scope="module")
def built(providers: list[dict[str, Any]]) -> tuple[dict[str, Any], BuildReport]:
    report = BuildReport()
    catalogue = build_catalogue(
        LITELLM,
        providers,
        as_of=date(2026, 11, 22),
        sources=[{"name": "x", "version": "1", "license": "MIT", "copyright": "Copyright (c) x"}],
        report=report,
    )
    return catalogue, report


def test_history_is_added_under_litellm_price(built: tuple[dict[str, Any], BuildReport]) -> None:
    catalogue, report = built
    models = {m["id"]: entry_from_dict(m) for m in catalogue["models"]}
    opus = models["anthropic/claude-opus-4-6"]
    old, new = opus.prices
    assert old.source == "genai-prices" and old.effective_from is None
    assert old.thresholds[0].above == 200_000 and old.thresholds[0].rates.input == D("0.00001")
    assert old.rates.web_search["medium"] == D("0.01")
    assert new.source == "litellm" and new.effective_from == datetime(2026, 3, 13, tzinfo=UTC)
    assert new.service_tiers["batch"].rates.input == D("2.5e-6")  # LiteLLM's spec, untouched
    assert any("2099-01-01" in f for f in report.future_prices)
    assert report.history_added == ["anthropic/claude-opus-4-6 (genai-prices anthropic/claude-opus-4-6)"]


def test_no_history_when_prices_disagree_or_depend_on_the_hour(
    built: tuple[dict[str, Any], BuildReport],
) -> None:
    catalogue, report = built
    models = {m["id"]: m for m in catalogue["models"]}
    assert len(models["anthropic/claude-mismatch"]["prices"]) == 1
    assert len(models["deepseek/deepseek-chat"]["prices"]) == 1
    assert any(m.startswith("anthropic/claude-mismatch") for m in report.history_mismatch)
    assert any(m.startswith("deepseek/deepseek-chat") for m in report.history_time_of_day)


def test_models_litellm_lacks_are_added(built: tuple[dict[str, Any], BuildReport]) -> None:
    catalogue, report = built
    cat = Catalogue.from_dict(catalogue)
    new = cat.get("anthropic/claude-new")
    assert new is not None
    spec = new.prices[-1]
    assert spec.source == "genai-prices"
    assert (spec.rates.input, spec.rates.cache_read, spec.rates.output) == (
        D("1.5e-7"),
        D("1.5e-8"),
        D("6e-7"),
    )
    # the batch variant is the whole price set with the variant's keys replaced
    batch = spec.service_tiers["batch"].rates
    assert (batch.input, batch.cache_read, batch.output) == (D("7.5e-8"), D("1.5e-8"), D("6e-7"))
    assert cat.find("claude-new-1") is new and cat.find("anthropic/claude-new-1") is new
    free = cat.get("openrouter/meta/llama-free:free")
    assert free is not None and (free.prices[-1].rates.input, free.prices[-1].rates.output) == (D(0), D(0))
    assert free.free and not new.free  # genai-prices' empty price set says free
    assert report.genai_added == {"anthropic": 1, "openrouter": 1}
    assert report.genai_unmapped["requests_kcount"] == 1
    # a model LiteLLM has is not duplicated
    assert cat.get("anthropic/claude-opus-4-6") is not None
    assert sum(1 for e in cat if e.model.startswith("claude-opus-4-6")) == 1


def test_output_is_deterministic_and_one_model_per_line(built: tuple[dict[str, Any], BuildReport]) -> None:
    catalogue, _ = built
    text = dumps_catalogue(catalogue)
    assert text == dumps_catalogue(json.loads(text))
    lines = text.splitlines()
    model_lines = [line for line in lines if line.startswith('{"id":')]
    assert len(model_lines) == len(catalogue["models"])
    assert json.loads(text) == catalogue | {"models": json.loads(text)["models"]}
    Catalogue.from_dict(json.loads(text, parse_float=Decimal))


def test_notice_copies_the_license_texts() -> None:
    lite = "Portions of this software...\n---\nMIT License\n\nCopyright (c) 2023 Berri AI\n\nPermission..."
    gen = "The MIT License (MIT)\n\nCopyright (c) Pydantic Services Inc. 2025 to present\n\nPermission..."
    assert mit_text(lite).startswith("MIT License")
    text = notice_text(lite, gen)
    assert (
        "Copyright (c) 2023 Berri AI" in text
        and "Copyright (c) Pydantic Services Inc. 2025 to present" in text
    )
    assert "Portions of this software" not in text

"""Reference §1.10's worked examples through the public API and the bundled catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

import spendgate
from spendgate import Usage
from spendgate.core.pricing.adjustments import AdjustmentRules
from spendgate.core.pricing.catalogue import Catalogue
from spendgate.errors import UnpricedModelError


@pytest.fixture(autouse=True)
def _fresh_book() -> Iterator[None]:
    spendgate.reset_price_book()
    yield
    spendgate.reset_price_book()


def test_1_gpt_4o() -> None:
    assert spendgate.cost_per_token("gpt-4o", 1000, 500) == (D("0.0025"), D("0.005"))


def test_2_gpt_4o_cached() -> None:
    got = spendgate.cost_per_token("gpt-4o", 1000, 500, cache_read_input_tokens=600)
    assert got == (D("0.00175"), D("0.005"))
    assert sum(got) == D("0.00675")


def test_3_claude_sonnet_4_5_cache_read_and_write() -> None:
    got = spendgate.cost_per_token(
        "claude-sonnet-4-5", 8000, 300, cache_read_input_tokens=5000, cache_creation_input_tokens=2000
    )
    assert got == (D("0.012"), D("0.0045"))
    raw = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-sonnet-4-5",
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 1000,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 5000,
            "output_tokens": 300,
        },
    }
    assert spendgate.completion_cost(raw) == D("0.0165")


def test_3b_one_hour_cache_writes() -> None:
    usage = Usage(input_tokens=3000, cache_write_tokens=2000, cache_write_1h_tokens=1500, output_tokens=300)
    b = spendgate.price("claude-sonnet-4-5", usage)
    assert (b.prompt_cost, b.completion_cost) == (D("0.013875"), D("0.0045"))


def test_4_gemini_long_context() -> None:
    assert spendgate.cost_per_token("gemini/gemini-2.5-pro", 250_000, 1000) == (D("0.625"), D("0.015"))
    assert spendgate.cost_per_token("gemini/gemini-2.5-pro", 200_000, 1000) == (D("0.25"), D("0.01"))


def test_5_o3_reasoning_at_output_rate() -> None:
    assert spendgate.cost_per_token("o3", 1000, 2000, reasoning_tokens=1500) == (D("0.002"), D("0.016"))


def test_6_audio_preview() -> None:
    usage = Usage(input_tokens=1000, input_audio_tokens=800, output_tokens=500, output_audio_tokens=400)
    b = spendgate.price("gpt-4o-audio-preview-2024-12-17", usage)
    assert (b.prompt_cost, b.completion_cost, b.total) == (D("0.0325"), D("0.033"), D("0.0655"))


def test_7_whisper_per_second() -> None:
    assert spendgate.cost_per_token("whisper-1", audio_transcription_file_duration=60) == (D(0), D("0.006"))


def test_8_batch() -> None:
    assert spendgate.cost_per_token("gpt-4o", 1000, 500, service_tier="batch") == (D("0.00125"), D("0.0025"))
    assert spendgate.cost_per_token("claude-sonnet-4-5", 1000, 500, service_tier="batch") == (
        D("0.0015"),
        D("0.00375"),
    )


def test_batch_output_file_example_of_reference_1_9() -> None:
    lines = [
        Usage(input_tokens=1000, output_tokens=500),
        Usage(input_tokens=2000, cache_read_tokens=1000, output_tokens=100),
    ]
    costs = [spendgate.price("gpt-4o-2024-08-06", u, service_tier="batch") for u in lines]
    assert [c.total for c in costs] == [D("0.00375"), D("0.003")]
    assert sum(c.prompt_cost for c in costs) == D("0.00375")
    assert sum(c.completion_cost for c in costs) == D("0.003")


def test_9_custom_cost_per_token_and_per_second() -> None:
    custom = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    assert spendgate.cost_per_token("anything", 1000, 500, custom_cost_per_token=custom) == (
        D("0.001"),
        D("0.001"),
    )
    got = spendgate.cost_per_token("anything", custom_cost_per_second=0.001, response_time_ms=2500)
    assert got == (D(0), D("0.0025"))


def test_10_tts_per_character() -> None:
    assert spendgate.cost_per_token("tts-1", prompt_characters=1000) == (D("0.015"), D(0))


def test_11_dashscope_tiers() -> None:
    assert spendgate.cost_per_token("dashscope/qwen-flash", 300_000, 1000) == (D("0.075"), D("0.002"))
    assert spendgate.cost_per_token("dashscope/qwen-flash", 1000, 1000) == (D("0.00005"), D("0.0004"))


def test_12_embedding() -> None:
    assert spendgate.cost_per_token("text-embedding-3-small", 10_000) == (D("0.0002"), D(0))
    response = {
        "object": "list",
        "data": [{"object": "embedding", "embedding": [0.1], "index": 0}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 10_000, "total_tokens": 10_000},
    }
    assert spendgate.completion_cost(response) == D("0.0002")


def test_13_14_service_tiers() -> None:
    assert spendgate.cost_per_token("gpt-4o", 1000, 500, service_tier="priority") == (
        D("0.00425"),
        D("0.0085"),
    )
    assert spendgate.cost_per_token("o3", 1000, 500, service_tier="flex") == (D("0.001"), D("0.002"))


def test_15_images() -> None:
    assert spendgate.price("gemini/imagen-3.0-generate-001", Usage(images=2)).total == D("0.08")


def test_16_search_preview_with_citation() -> None:
    response = {
        "object": "chat.completion",
        "model": "gpt-4o-search-preview",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "…",
                    "annotations": [{"type": "url_citation", "url_citation": {"url": "https://example.com"}}],
                },
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }
    assert spendgate.completion_cost(response, search_context_size="low") == D("0.0325")


def test_17_anthropic_web_search() -> None:
    raw = {
        "type": "message",
        "model": "claude-sonnet-4-5",
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "output_tokens": 500, "server_tool_use": {"web_search_requests": 3}},
    }
    assert spendgate.completion_cost(raw) == D("0.0405")


def test_18_off_peak() -> None:
    peak = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)  # a Monday
    off = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)
    assert spendgate.cost_per_token("deepseek-flash", 1000, 1000, at=peak) == (D("0.0003"), D("0.0012"))
    assert spendgate.cost_per_token("deepseek-flash", 1000, 1000, at=off) == (D("0.00015"), D("0.0006"))


def test_19_discount_and_margin() -> None:
    rules = AdjustmentRules.from_litellm(
        {"openai": 0.05}, {"openai": {"percentage": 0.10, "fixed_amount": 0.001}}
    )
    adj = rules.for_model("openai", "gpt-4o")
    got = spendgate.completion_cost(
        model="gpt-4o", usage=Usage(input_tokens=1000, output_tokens=500), adjustment=adj
    )
    assert got == D("0.0088375")


def test_unknown_model_is_unpriced_never_zero() -> None:
    b = spendgate.price("no-such-model-xyz", Usage(input_tokens=10, output_tokens=10))
    assert not b.priced and b.unpriced_reason and "no-such-model-xyz" in b.unpriced_reason
    with pytest.raises(UnpricedModelError):
        spendgate.cost_per_token("no-such-model-xyz", 10, 10)
    with pytest.raises(UnpricedModelError):
        spendgate.completion_cost(model="no-such-model-xyz", usage=Usage(input_tokens=1))


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o",
        "openai/gpt-4o",
        "OpenAI/GPT-4o",
        "gpt-4o-2024-08-06",
        "azure/gpt-4o",
        "claude-sonnet-4-5",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-pro",
        "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
    ],
)
def test_model_names_resolve(name: str) -> None:
    b = spendgate.price(name, Usage(input_tokens=1000, output_tokens=1000))
    assert b.priced, b.unpriced_reason
    assert b.total > 0
    assert b.catalogue_version and b.price_source == "bundled"


def test_register_prices_overlays_declared_rates_only() -> None:
    spendgate.register_prices(
        {"gpt-4o": {"input_cost_per_token": 1e-6, "litellm_provider": "openai"}}, name="ops"
    )
    b = spendgate.price("gpt-4o", Usage(input_tokens=1000, output_tokens=500))
    assert (b.prompt_cost, b.completion_cost) == (D("0.001"), D("0.005"))
    assert b.price_source == "bundled+ops"


def test_price_history_prices_by_the_timestamp() -> None:
    layer = Catalogue.from_dict(
        {
            "format": "spendgate-catalogue/1",
            "version": "test",
            "models": [
                {
                    "provider": "acme",
                    "model": "m1",
                    "prices": [
                        {"rates": {"input": "2e-6", "output": "8e-6"}},
                        {"from": "2026-06-10", "rates": {"input": "1e-6", "output": "4e-6"}},
                    ],
                }
            ],
        },
        name="acme",
    )
    book = spendgate.default_price_book().with_layer(layer)
    usage = Usage(input_tokens=1000, output_tokens=1000)
    before = spendgate.price("acme/m1", usage, book=book, at=datetime(2026, 6, 9, 23, 59, tzinfo=UTC))
    after = spendgate.price("acme/m1", usage, book=book, at=datetime(2026, 6, 10, tzinfo=UTC))
    assert (before.total, after.total) == (D("0.01"), D("0.005"))

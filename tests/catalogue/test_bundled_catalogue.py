"""The bundled catalogue file: it loads, it is complete, and reference prices are exact."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.core.pricing.catalogue import Catalogue
from spendgate.core.pricing.spec import ModelEntry, PriceSpec

D = Decimal
PATH = Path(__file__).resolve().parents[2] / "src" / "spendgate" / "catalogue" / "data" / "catalogue.json"
REQUIRED_PROVIDERS = (
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "vertex_ai",
    "bedrock",
    "mistral",
    "cohere",
    "deepseek",
    "xai",
    "groq",
    "together_ai",
    "fireworks_ai",
    "perplexity",
    "openrouter",
)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"), parse_float=Decimal)
    return data


@pytest.fixture(scope="module")
def cat(raw: dict[str, Any]) -> Catalogue:
    return Catalogue.from_dict(raw)


def entry(cat: Catalogue, entry_id: str) -> ModelEntry:
    found = cat.get(entry_id)
    assert found is not None, entry_id
    return found


def newest(cat: Catalogue, entry_id: str) -> PriceSpec:
    return entry(cat, entry_id).prices[-1]


def test_header_and_size(raw: dict[str, Any]) -> None:
    assert raw["format"] == "spendgate-catalogue/1"
    assert raw["version"] and raw["prices_checked"]
    assert {s["name"] for s in raw["sources"]} == {"litellm", "genai-prices"}
    assert all(s["license"] == "MIT" and s["copyright"].startswith("Copyright") for s in raw["sources"])
    assert PATH.stat().st_size < 4_000_000


def test_sorted_one_model_per_line(raw: dict[str, Any]) -> None:
    ids = [m["id"] for m in raw["models"]]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    lines = PATH.read_text(encoding="utf-8").splitlines()
    assert sum(line.startswith('{"id":') for line in lines) == len(ids)


def test_thousands_of_entries_for_every_required_provider(cat: Catalogue) -> None:
    assert len(cat) > 4000
    counts = Counter(e.provider for e in cat)
    for provider in REQUIRED_PROVIDERS:
        assert counts[provider] >= 5, provider
    assert all(e.prices for e in cat)


def test_gpt_4o(cat: Catalogue) -> None:
    spec = newest(cat, "openai/gpt-4o")
    assert (spec.rates.input, spec.rates.output, spec.rates.cache_read) == (
        D("2.5e-6"),
        D("1e-5"),
        D("1.25e-6"),
    )
    batch = spec.service_tiers["batch"].rates
    assert (batch.input, batch.output) == (D("1.25e-6"), D("5e-6"))
    priority = spec.service_tiers["priority"].rates
    assert (priority.input, priority.output) == (D("4.25e-6"), D("1.7e-5"))


def test_claude_sonnet_4_5(cat: Catalogue) -> None:
    spec = newest(cat, "anthropic/claude-sonnet-4-5")
    r = spec.rates
    assert (r.input, r.output) == (D("3e-6"), D("1.5e-5"))
    assert (r.cache_write, r.cache_write_1h, r.cache_read) == (D("3.75e-6"), D("6e-6"), D("3e-7"))
    assert r.web_search["low"] == D("0.01")
    batch = spec.service_tiers["batch"].rates
    assert (batch.input, batch.output) == (D("1.5e-6"), D("7.5e-6"))


def test_gemini_2_5_pro_long_context(cat: Catalogue) -> None:
    spec = newest(cat, "gemini/gemini-2.5-pro")
    assert (spec.rates.input, spec.rates.output) == (D("1.25e-6"), D("1e-5"))
    (threshold,) = spec.thresholds
    assert threshold.above == 200_000
    assert (threshold.rates.input, threshold.rates.output) == (D("2.5e-6"), D("1.5e-5"))
    assert not entry(cat, "gemini/gemini-2.5-pro").inclusive_thresholds


def test_o3_flex(cat: Catalogue) -> None:
    flex = newest(cat, "openai/o3").service_tiers["flex"].rates
    assert (flex.input, flex.output) == (D("1e-6"), D("4e-6"))


def test_non_token_units(cat: Catalogue) -> None:
    whisper = newest(cat, "openai/whisper-1").rates
    assert (whisper.input_per_second, whisper.output_per_second) == (D("1e-4"), D("1e-4"))
    assert newest(cat, "openai/tts-1").rates.input_per_character == D("1.5e-5")
    assert newest(cat, "gemini/imagen-3.0-generate-001").rates.output_per_image == D("0.04")
    assert newest(cat, "openai/gpt-4o-search-preview").rates.web_search["low"] == D("0.025")
    audio = newest(cat, "openai/gpt-4o-audio-preview-2024-12-17").rates
    assert (audio.input_audio, audio.output_audio) == (D("4e-5"), D("8e-5"))
    assert newest(cat, "openai/text-embedding-3-small").rates.input == D("2e-8")
    assert entry(cat, "openai/text-embedding-3-small").mode == "embedding"


def test_tiers_and_off_peak(cat: Catalogue) -> None:
    tiers = newest(cat, "dashscope/qwen-flash").tiers
    assert [(t.start, t.end, t.rates.input, t.rates.output) for t in tiers] == [
        (0, 256_000, D("5e-8"), D("4e-7")),
        (256_000, 1_000_000, D("2.5e-7"), D("2e-6")),
    ]
    spec = newest(cat, "deepseek/deepseek-flash")
    assert (spec.rates.input, spec.rates.output) == (D("3e-7"), D("1.2e-6"))
    assert spec.off_peak is not None
    assert (spec.off_peak.rates.input, spec.off_peak.rates.output) == (D("1.5e-7"), D("6e-7"))
    assert {d for w in spec.off_peak.windows for d in (w.weekdays or ())} == set(range(1, 8))


def test_image_variants(cat: Catalogue) -> None:
    variants = newest(cat, "openai/gpt-image-1").rates.image_variants
    assert variants["high/1024x1024"] == D("0.167") and variants["low/1536x1024"] == D("0.016")
    dalle = newest(cat, "azure/dall-e-3").rates.image_variants
    assert dalle["hd/1024x1792"] == D("7.19343e-08") * 1024 * 1792


def test_xai_is_inclusive(cat: Catalogue) -> None:
    assert all(e.inclusive_thresholds for e in cat if e.provider == "xai")


@pytest.mark.parametrize(
    ("name", "provider", "expected"),
    [
        ("gpt-4o", None, "openai/gpt-4o"),
        ("openai/gpt-4o", None, "openai/gpt-4o"),
        ("azure/gpt-4o", None, "azure/gpt-4o"),
        ("gpt-4o", "azure", "azure/gpt-4o"),
        ("claude-sonnet-4-5", None, "anthropic/claude-sonnet-4-5"),
        ("gemini/gemini-2.5-pro", None, "gemini/gemini-2.5-pro"),
        ("gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("gpt-4o-2024-08-06", None, "openai/gpt-4o-2024-08-06"),
        ("vertex_ai/claude-sonnet-4-5", None, "vertex_ai/claude-sonnet-4-5"),
        ("deepseek-flash", None, "deepseek/deepseek-flash"),
        ("grok-4", None, "xai/grok-4-0709"),
    ],
)
def test_find(cat: Catalogue, name: str, provider: str | None, expected: str) -> None:
    found = cat.find(name, provider)
    assert found is not None and found.id == expected


def test_price_history_keeps_litellm_newest(cat: Catalogue) -> None:
    """Where genai-prices has older prices, they sit under LiteLLM's current one."""
    opus = entry(cat, "anthropic/claude-opus-4-6")
    assert len(opus.prices) == 2
    old, new = opus.prices
    # LiteLLM's spec, with the rates only genai-prices has added (here a batch 1 h cache write)
    assert old.source == "genai-prices" and new.source == "litellm+genai-prices"
    assert new.service_tiers["batch"].rates.cache_write_1h == D("5e-6")
    assert new.effective_from == datetime(2026, 3, 13, tzinfo=UTC)
    # before 2026-03-13, prompts above 200k tokens were billed at the long-context rate
    assert old.thresholds[0].above == 200_000 and old.thresholds[0].rates.input == D("1e-5")
    assert not new.thresholds and new.rates.input == old.rates.input == D("5e-6")
    assert opus.spec_at(datetime(2026, 1, 1, tzinfo=UTC)) is old
    assert opus.spec_at(datetime(2026, 6, 1, tzinfo=UTC)) is new
    # every entry's newest spec comes from LiteLLM unless the model is genai-prices-only
    for e in cat:
        if len(e.prices) > 1 and any(p.source.startswith("litellm") for p in e.prices):
            assert e.prices[-1].source.startswith("litellm"), e.id


def test_models_litellm_lacks_come_from_genai_prices(cat: Catalogue) -> None:
    spec = newest(cat, "openrouter/anthropic/claude-3.5-sonnet")
    assert spec.source == "genai-prices"
    assert (spec.rates.input, spec.rates.output) == (D("3e-6"), D("1.5e-5"))

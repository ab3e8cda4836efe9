"""What reconciling LiteLLM with genai-prices changed in the bundled catalogue.

Each figure here is the provider's published price (or its exact per-unit conversion),
typed in by hand; the reasons are in src/spendgate/catalogue/data/reconciliation.json.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from tools.catalogue.reconcile import flatten, shortest

from spendgate.catalogue.bundled import bundled_catalogue
from spendgate.core.money import to_nano
from spendgate.core.pricing.catalogue import Catalogue
from spendgate.core.pricing.spec import ModelEntry, PriceSpec, spec_to_dict

D = Decimal


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return bundled_catalogue()


def newest(cat: Catalogue, name: str) -> PriceSpec:
    entry = cat.find(name)
    assert entry is not None, name
    return entry.prices[-1]


@pytest.mark.parametrize("name", ["claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku-20241022"])
def test_a_dated_snapshot_only_genai_prices_prices_resolves(cat: Catalogue, name: str) -> None:
    spec = newest(cat, name)
    assert (spec.rates.input, spec.rates.output, spec.rates.cache_read) == (D("8e-7"), D("4e-6"), D("8e-8"))


def test_audio_token_rates_are_the_published_ones(cat: Catalogue) -> None:
    for name, audio in [
        ("openai/gpt-4o-transcribe", "6e-6"),
        ("openai/gpt-4o-transcribe-diarize", "6e-6"),
        ("openai/gpt-4o-mini-transcribe", "3e-6"),
        ("openai/gpt-4o-mini-transcribe-2025-12-15", "3e-6"),
    ]:
        assert newest(cat, name).rates.input_audio == D(audio), name
    # speech: every output token is audio, $12/M
    assert newest(cat, "gpt-4o-mini-tts").rates.output == D("1.2e-5")


def test_per_hour_prices_are_converted_exactly(cat: Catalogue) -> None:
    # Groq publishes $0.111 per hour of audio; LiteLLM's 3.083e-05/s lost $0.000012 an hour
    rate = newest(cat, "groq/whisper-large-v3").rates.input_per_second
    assert rate is not None and to_nano(rate * 3600) == 111_000_000
    rate = newest(cat, "groq/whisper-large-v3-turbo").rates.input_per_second
    assert rate is not None and to_nano(rate * 3600) == 40_000_000
    # Azure lists gpt-realtime-whisper at $1.02 an hour (LiteLLM: 0.0002833333333333333/s)
    rate = newest(cat, "azure/gpt-realtime-whisper").rates.input_per_second
    assert rate is not None and to_nano(rate * 3600 * 1000) == 1_020_000_000_000


def test_no_float_artefacts_are_left(cat: Catalogue) -> None:
    def specs(entry: ModelEntry) -> list[PriceSpec]:
        return [s for p in entry.prices for s in (p, *p.service_tiers.values())]

    left = [
        (e.id, path, value)
        for e in cat
        for spec in specs(e)
        for path, value in flatten(spec_to_dict(spec)).items()
        if shortest(value) is not None
    ]
    assert not left
    opencode = newest(cat, "opencode_go/gpt-6-luna")
    assert opencode.rates.input == D("1e-7") and opencode.tiers[1].rates.input == D("2e-7")


def test_bedrock_in_region_pays_the_regional_price_and_global_the_global(cat: Catalogue) -> None:
    regional = newest(cat, "bedrock/anthropic.claude-sonnet-4-6").rates
    assert (regional.input, regional.output, regional.cache_write) == (
        D("3.3e-6"),
        D("1.65e-5"),
        D("4.125e-6"),
    )
    assert newest(cat, "bedrock/us.anthropic.claude-sonnet-4-6").rates.input == D("3.3e-6")
    assert newest(cat, "bedrock/global.anthropic.claude-sonnet-4-6").rates.input == D("3e-6")
    # a data-zone variant keeps its own price (rule regional-variant)
    assert newest(cat, "bedrock/eu.amazon.nova-pro-v1:0").rates.input == D("1.05e-6")


def test_reviewed_figures(cat: Catalogue) -> None:
    grok = newest(cat, "xai/grok-code-fast-1").rates
    assert (grok.input, grok.cache_read, grok.output) == (D("2e-7"), D("2e-8"), D("1.5e-6"))
    llama = newest(cat, "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct").rates
    assert (llama.input, llama.output) == (D("2e-7"), D("2e-7"))
    assert newest(cat, "azure/text-embedding-3-large").rates.input == D("1.3e-7")
    # LiteLLM kept where it is the published price: Vertex AI's own Gemini 2.0 Flash rates
    assert newest(cat, "vertex_ai/gemini-2.0-flash").rates.input == D("1.5e-7")


def test_long_context_premiums_only_genai_prices_has_are_kept(cat: Catalogue) -> None:
    spec = newest(cat, "anthropic/claude-sonnet-4-5-20250929")
    (threshold,) = spec.thresholds
    assert threshold.above == 200_000 and threshold.rates.input == D("6e-6")
    assert threshold.rates.cache_read == D("6e-7")


def test_xai_thresholds_from_genai_prices_apply_at_200k(cat: Catalogue) -> None:
    entry = cat.find("xai/grok-4.20")
    assert entry is not None and entry.inclusive_thresholds
    for spec in entry.prices:
        assert [t.above for t in spec.thresholds] == [200_000], spec.source

"""A zero rate is a missing price: counts are priced at the side the entry declares a
non-zero rate on, and a usage that still prices at $0 is unpriced unless the model is
declared free (issue #16, item 1). Expected values are computed by hand from the rates."""

from __future__ import annotations

from decimal import Decimal

import pytest

import spendgate
from spendgate import Usage
from spendgate.catalogue.litellm_format import litellm_to_entries
from spendgate.core.pricing.calculator import calculate
from spendgate.core.pricing.catalogue import Catalogue, PriceBook
from spendgate.core.pricing.spec import PriceSpec, Rates, entry_from_dict, prices_nothing
from spendgate.errors import CatalogueFormatError, UnpricedModelError

D = Decimal


def _calc(rates: Rates, usage: Usage, mode: str = "chat", free: bool = False) -> spendgate.CostBreakdown:
    return calculate(PriceSpec(rates=rates), usage, "m", mode=mode, free=free)


def test_groq_whisper_per_second_price_on_the_input_side() -> None:
    # LiteLLM's layout for Groq's Whisper: the per-second price on the input side, 0 on output.
    b = _calc(
        Rates(input_per_second=D("3.083e-5"), output_per_second=D(0)),
        Usage(seconds=D(60)),
        mode="audio_transcription",
    )
    assert b.priced and (b.input, b.output, b.total) == (D("0.0018498"), D(0), D("0.0018498"))


def test_whisper_with_both_sides_bills_the_seconds_once() -> None:
    b = _calc(Rates(input_per_second=D("1e-4"), output_per_second=D("1e-4")), Usage(seconds=D(60)))
    assert (b.input, b.output, b.total) == (D(0), D("0.006"), D("0.006"))


def test_video_seconds_are_video_output() -> None:
    b = _calc(Rates(output_per_second=D("0.1")), Usage(seconds=D(8)), mode="video_generation")
    assert (b.output_video, b.total) == (D("0.8"), D("0.8"))


def test_every_per_second_rate_zero_is_unpriced_with_a_reason() -> None:
    b = _calc(Rates(input_per_second=D(0), output_per_second=D(0)), Usage(seconds=D(60)))
    assert not b.priced and b.total == 0
    assert b.unpriced_reason is not None and "seconds=60" in b.unpriced_reason


def test_generated_images_fall_back_to_the_input_per_image_price() -> None:
    # xAI's image models: LiteLLM writes the per-image price as input_cost_per_image.
    b = _calc(Rates(input_per_image=D("0.02")), Usage(images=3), mode="image_generation")
    assert (b.output_image, b.total) == (D("0.06"), D("0.06"))


def test_image_variants_match_whatever_their_case() -> None:
    rates = Rates(image_variants={"1K": D("0.039"), "4K": D("0.24")})
    b = _calc(rates, Usage(images=2, image_size="4k"), mode="image_generation")
    assert b.output_image == D("0.48")


def test_an_image_variant_not_priced_is_unpriced_not_zero() -> None:
    b = _calc(Rates(image_variants={"1024x1024": D("0.04")}), Usage(images=1, image_size="256x256"))
    assert not b.priced and "images=1" in (b.unpriced_reason or "")


def test_zero_per_character_rate_leaves_the_tokens_priced() -> None:
    b = _calc(
        Rates(input=D("1e-6"), output=D("2e-6"), input_per_character=D(0)),
        Usage(input_tokens=100, output_tokens=10, input_characters=400),
    )
    assert (b.input, b.output) == (D("0.0001"), D("0.00002"))


@pytest.mark.parametrize(
    ("rates", "usage"),
    [
        (Rates(input=D(0), output=D(0), input_per_query=D("0.002")), Usage(input_tokens=500)),  # rerank
        (Rates(input_per_query=D(0)), Usage(queries=3)),  # search
        (Rates(input=D("1e-7"), output=D(0)), Usage(output_tokens=10)),  # embedding
        (Rates(input_per_character=D("1.5e-5")), Usage(output_characters=100)),  # speech
        (Rates(input=D("1e-6")), Usage(web_search_requests=2)),
    ],
    ids=["rerank-tokens", "search-zero-query", "embedding-output", "speech-output-chars", "no-search-rate"],
)
def test_usage_with_quantities_at_zero_is_unpriced(rates: Rates, usage: Usage) -> None:
    b = _calc(rates, usage)
    assert not b.priced and b.unpriced_reason and b.total_nanos == 0


def test_empty_usage_is_a_priced_zero() -> None:
    assert _calc(Rates(input=D(0)), Usage()).priced


def test_a_free_model_prices_its_usage_at_zero() -> None:
    assert _calc(Rates(input=D(0), output=D(0)), Usage(input_tokens=10), free=True).priced


def test_explicit_zero_cache_rate_still_gives_a_priced_call_when_something_is_paid() -> None:
    b = _calc(Rates(input=D("1e-6"), cache_read=D(0)), Usage(input_tokens=1000, cache_read_tokens=500))
    assert b.priced and (b.input, b.cache_read) == (D("0.0005"), D(0))


def test_the_memo_never_turns_an_unpriced_usage_into_a_priced_one() -> None:
    spec = PriceSpec(rates=Rates(input=D(0)))
    usage = Usage(input_tokens=7)
    for _ in range(3):
        assert not calculate(spec, usage, "m").priced
    assert calculate(spec, usage, "m", free=True).priced
    assert not calculate(spec, usage, "m").priced


def test_entries_declare_free_in_json_and_only_as_a_boolean() -> None:
    data = {"provider": "ollama", "model": "llama3", "free": True, "prices": [{"rates": {"input": "0"}}]}
    assert entry_from_dict(data).free
    with pytest.raises(CatalogueFormatError, match="free"):
        entry_from_dict({**data, "free": "yes"})


def test_litellm_format_zero_everywhere_means_free_and_nothing_else_does() -> None:
    entries = {
        e["id"]: e
        for e in litellm_to_entries(
            {
                "ollama/llama3": {
                    "litellm_provider": "ollama",
                    "input_cost_per_token": 0,
                    "output_cost_per_token": 0,
                },
                "groq/whisper-large-v3": {
                    "litellm_provider": "groq",
                    "mode": "audio_transcription",
                    "input_cost_per_second": 3.083e-05,
                    "output_cost_per_second": 0,
                },
            }
        )
    }
    assert entries["ollama/llama3"]["free"] is True
    assert "free" not in entries["groq/whisper-large-v3"]
    assert prices_nothing(PriceSpec(rates=Rates(input=D(0)))) and not prices_nothing(PriceSpec(rates=Rates()))


def test_price_api_unpriced_and_free_end_to_end() -> None:
    layer = Catalogue.from_dict(
        {
            "format": "spendgate-catalogue/1",
            "version": "t",
            "models": [
                {
                    "provider": "local",
                    "model": "free-one",
                    "free": True,
                    "prices": [{"rates": {"input": "0"}}],
                },
                {
                    "provider": "local",
                    "model": "zero-one",
                    "prices": [{"rates": {"input": "0", "output": "0"}}],
                },
            ],
        }
    )
    book = PriceBook([layer])
    assert spendgate.price("local/free-one", Usage(input_tokens=5), book=book).priced
    zero = spendgate.price("local/zero-one", Usage(input_tokens=5), book=book)
    assert not zero.priced and "local/zero-one" in (zero.unpriced_reason or "")
    # the LiteLLM-compatible calls refuse to return a number for it
    with pytest.raises(UnpricedModelError):
        spendgate.completion_cost(model="local/zero-one", usage=Usage(input_tokens=5), book=book)
    # per-call custom rates that are all zero are declared free by the caller
    assert spendgate.cost_per_token(
        "anything", 10, 10, custom_cost_per_token={"input_cost_per_token": 0, "output_cost_per_token": 0}
    ) == (D(0), D(0))


def test_groq_whisper_from_the_bundled_catalogue_is_not_zero() -> None:
    b = spendgate.price("groq/whisper-large-v3", Usage(seconds=D(3600)))
    assert b.priced and b.total > D("0.1")

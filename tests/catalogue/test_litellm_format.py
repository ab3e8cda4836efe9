"""LiteLLM price JSON → spendgate entries, one field kind at a time, on hand-written dicts."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

import pytest

from spendgate.catalogue.litellm_format import (
    ConversionReport,
    litellm_provider_id,
    litellm_to_catalogue,
    litellm_to_entries,
)
from spendgate.core.pricing.catalogue import Catalogue
from spendgate.core.pricing.spec import CatalogueFormatError, ModelEntry, entry_from_dict

D = Decimal


def convert(data: dict[str, Any], report: ConversionReport | None = None) -> dict[str, ModelEntry]:
    entries = litellm_to_entries(data, report=report)
    return {e["id"]: entry_from_dict(e) for e in entries}


def one(data: dict[str, Any]) -> ModelEntry:
    entries = convert(data)
    assert len(entries) == 1, entries
    return next(iter(entries.values()))


def test_flat_token_rates_and_identity() -> None:
    e = one(
        {
            "gpt-4o": {
                "litellm_provider": "openai",
                "mode": "chat",
                "input_cost_per_token": 2.5e-06,
                "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-06,
                "max_input_tokens": 128000,
                "max_tokens": 16384,
                "supports_vision": True,
            }
        }
    )
    assert e.id == "openai/gpt-4o" and e.provider == "openai" and e.model == "gpt-4o"
    assert "gpt-4o" in e.aliases and e.mode == "chat"
    assert e.max_input_tokens == 128000 and e.max_output_tokens == 16384
    r = e.prices[-1].rates
    assert (r.input, r.output, r.cache_read) == (D("0.0000025"), D("0.00001"), D("0.00000125"))
    assert r.cache_write is None and not e.inclusive_thresholds


def test_every_flat_rate_key() -> None:
    e = one(
        {
            "m": {
                "litellm_provider": "openai",
                "cache_creation_input_token_cost": "3.75e-6",
                "cache_creation_input_token_cost_above_1hr": "6e-6",
                "output_cost_per_reasoning_token": 1e-5,
                "input_cost_per_audio_token": 4e-5,
                "cache_read_input_audio_token_cost": 2e-5,
                "input_cost_per_image_token": 1e-5,
                "input_cost_per_video_token": 3e-6,
                "output_cost_per_audio_token": 8e-5,
                "output_cost_per_image_token": 4e-5,
                "output_cost_per_video_token": 5e-5,
                "input_cost_per_character": 1.5e-5,
                "output_cost_per_character": 2e-5,
                "cost_per_second": 0.001,
                "input_cost_per_second": 0.0001,
                "output_cost_per_second": 0.0002,
                "input_cost_per_image": 0.01,
                "output_cost_per_image": 0.04,
                "input_cost_per_query": 0.005,
            }
        }
    )
    r = e.prices[-1].rates
    assert r.cache_write == D("3.75e-6") and r.cache_write_1h == D("6e-6")
    assert r.reasoning == D("1e-5")
    assert (r.input_audio, r.cache_read_audio, r.input_image, r.input_video) == (
        D("4e-5"),
        D("2e-5"),
        D("1e-5"),
        D("3e-6"),
    )
    assert (r.output_audio, r.output_image, r.output_video) == (D("8e-5"), D("4e-5"), D("5e-5"))
    assert (r.input_per_character, r.output_per_character) == (D("1.5e-5"), D("2e-5"))
    assert (r.per_second, r.input_per_second, r.output_per_second) == (D("0.001"), D("0.0001"), D("0.0002"))
    assert (r.input_per_image, r.output_per_image, r.input_per_query) == (D("0.01"), D("0.04"), D("0.005"))


def test_thresholds_including_service_tier_suffixed_ones() -> None:
    e = one(
        {
            "gemini/gemini-2.5-pro": {
                "litellm_provider": "gemini",
                "input_cost_per_token": 1.25e-06,
                "output_cost_per_token": 1e-05,
                "input_cost_per_token_above_200k_tokens": 2.5e-06,
                "output_cost_per_token_above_200k_tokens": 1.5e-05,
                "cache_read_input_token_cost_above_200k_tokens": 2.5e-07,
                "input_cost_per_token_above_128_tokens": 1.5e-06,
                "input_cost_per_token_priority": 2.25e-06,
                "input_cost_per_token_above_200k_tokens_priority": 4.5e-06,
                "output_cost_per_token_above_200k_tokens_priority": 2.7e-05,
            }
        }
    )
    spec = e.prices[-1]
    assert [t.above for t in spec.thresholds] == [128, 200_000]
    above = spec.thresholds[1].rates
    assert (above.input, above.output, above.cache_read) == (D("2.5e-6"), D("1.5e-5"), D("2.5e-7"))
    priority = spec.service_tiers["priority"]
    assert priority.rates.input == D("2.25e-6") and priority.rates.output is None
    assert [(t.above, t.rates.input, t.rates.output) for t in priority.thresholds] == [
        (200_000, D("4.5e-6"), D("2.7e-5"))
    ]


def test_cache_write_ttl_with_threshold() -> None:
    e = one(
        {
            "m": {
                "litellm_provider": "anthropic",
                "cache_creation_input_token_cost_above_1hr": 6e-6,
                "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-5,
            }
        }
    )
    spec = e.prices[-1]
    assert spec.rates.cache_write_1h == D("6e-6")
    assert spec.thresholds[0].above == 200_000 and spec.thresholds[0].rates.cache_write_1h == D("1.2e-5")


def test_batches_flex_priority() -> None:
    e = one(
        {
            "o3": {
                "litellm_provider": "openai",
                "input_cost_per_token": 2e-06,
                "output_cost_per_token": 8e-06,
                "input_cost_per_token_batches": 1e-06,
                "output_cost_per_token_batches": 4e-06,
                "cache_read_input_token_cost_batches": 2.5e-07,
                "input_cost_per_token_above_272k_tokens_batches": 2e-06,
                "input_cost_per_token_flex": 1e-06,
                "output_cost_per_token_flex": 4e-06,
                "input_cost_per_token_priority": 3.5e-06,
                "cache_read_input_token_cost_priority": 8.75e-07,
                "input_cost_per_token_balanced": 9e-06,
                "input_cost_per_token_ultrafast": 9e-06,
            }
        }
    )
    tiers = e.prices[-1].service_tiers
    assert set(tiers) == {"batch", "flex", "priority"}
    batch = tiers["batch"]
    assert (batch.rates.input, batch.rates.output, batch.rates.cache_read) == (
        D("1e-6"),
        D("4e-6"),
        D("2.5e-7"),
    )
    assert [(t.above, t.rates.input) for t in batch.thresholds] == [(272_000, D("2e-6"))]
    assert (tiers["flex"].rates.input, tiers["flex"].rates.output) == (D("1e-6"), D("4e-6"))
    assert tiers["priority"].rates.cache_read == D("8.75e-7") and tiers["priority"].rates.output is None


def test_unsupported_service_tiers_are_reported_not_dropped_silently() -> None:
    report = ConversionReport()
    convert(
        {
            "m": {
                "litellm_provider": "openai",
                "input_cost_per_token": 1e-6,
                "input_cost_per_token_balanced": 2e-6,
                "output_cost_per_token_ultrafast": 3e-6,
                "google_maps_grounding_cost_per_query": 0.025,
                "supports_vision": True,
            }
        },
        report,
    )
    assert report.unmapped == {
        "input_cost_per_token_balanced": 1,
        "output_cost_per_token_ultrafast": 1,
        "google_maps_grounding_cost_per_query": 1,
    }
    assert "input_cost_per_token_balanced: 1" in report.format()


def test_tiered_pricing() -> None:
    e = one(
        {
            "dashscope/qwen-flash": {
                "litellm_provider": "dashscope",
                "tiered_pricing": [
                    {"input_cost_per_token": 5e-08, "output_cost_per_token": 4e-07, "range": [0, 256000.0]},
                    {
                        "input_cost_per_token": 2.5e-07,
                        "output_cost_per_token": 2e-06,
                        "cache_read_input_token_cost": 5e-8,
                        "output_cost_per_reasoning_token": 4e-6,
                        "range": [256000.0, 1000000.0],
                    },
                ],
            }
        }
    )
    tiers = e.prices[-1].tiers
    assert [(t.start, t.end) for t in tiers] == [(0, 256_000), (256_000, 1_000_000)]
    assert (tiers[0].rates.input, tiers[0].rates.output) == (D("5e-8"), D("4e-7"))
    assert (tiers[1].rates.cache_read, tiers[1].rates.reasoning) == (D("5e-8"), D("4e-6"))
    assert e.prices[-1].rates.is_empty


def test_search_tiers_by_result_count_are_reported() -> None:
    report = ConversionReport()
    entries = convert(
        {
            "exa_ai/search": {
                "litellm_provider": "exa_ai",
                "mode": "search",
                "tiered_pricing": [{"input_cost_per_query": 0.005, "max_results_range": [0, 25]}],
            }
        },
        report,
    )
    assert entries == {}
    assert report.skipped == ["exa_ai/search"]
    assert report.unmapped["tiered_pricing (without a token range)"] == 1


def test_off_peak_windows_and_flat_hours() -> None:
    entries = convert(
        {
            "deepseek-flash": {
                "litellm_provider": "deepseek",
                "input_cost_per_token": 3e-07,
                "output_cost_per_token": 1.2e-06,
                "off_peak_pricing": {
                    "input_cost_per_token": 1.5e-07,
                    "output_cost_per_token": 6e-07,
                    "cache_read_input_token_cost": 3e-09,
                    "weekday_timezone": "Asia/Shanghai",
                    "windows": [
                        {"hours_utc": ["00:00-01:00", "10:00-00:00"], "weekdays": [1, 2, 3, 4, 5]},
                        {"hours_utc": "00:00-00:00", "weekdays": [6, 7]},
                    ],
                },
            },
            "other": {
                "litellm_provider": "deepseek",
                "input_cost_per_token": 3e-07,
                "off_peak_pricing": {"input_cost_per_token": 1e-07, "hours_utc": "16:30-00:30"},
            },
        }
    )
    op = entries["deepseek/deepseek-flash"].prices[-1].off_peak
    assert op is not None and op.weekday_timezone == "Asia/Shanghai"
    assert (op.rates.input, op.rates.output, op.rates.cache_read) == (D("1.5e-7"), D("6e-7"), D("3e-9"))
    assert op.windows[0].hours == ((time(0), time(1)), (time(10), time(0)))
    assert op.windows[0].weekdays == frozenset({1, 2, 3, 4, 5})
    assert op.windows[1].hours == ((time(0), time(0)),) and op.windows[1].weekdays == frozenset({6, 7})
    flat = entries["deepseek/other"].prices[-1].off_peak
    assert flat is not None and flat.windows[0].weekdays is None
    assert flat.windows[0].hours == ((time(16, 30), time(0, 30)),)


def test_web_search_sizes() -> None:
    e = one(
        {
            "gpt-4o-search-preview": {
                "litellm_provider": "openai",
                "input_cost_per_token": 2.5e-6,
                "search_context_cost_per_query": {
                    "search_context_size_low": 0.025,
                    "search_context_size_medium": 0.0275,
                    "search_context_size_high": 0.03,
                },
            }
        }
    )
    assert dict(e.prices[-1].rates.web_search) == {
        "low": D("0.025"),
        "medium": D("0.0275"),
        "high": D("0.03"),
    }


def test_image_resolution_variant_keys() -> None:
    e = one(
        {
            "fal_ai/fal-ai/nano-banana-2": {
                "litellm_provider": "fal_ai",
                "mode": "image_generation",
                "output_cost_per_image": 0.08,
                "output_cost_per_image_0.5K": 0.06,
                "output_cost_per_image_4K": 0.16,
                "output_cost_per_image_token": 3e-5,
            }
        }
    )
    r = e.prices[-1].rates
    assert e.id == "fal_ai/fal-ai/nano-banana-2" and e.mode == "image_generation"
    assert r.output_per_image == D("0.08") and r.output_image == D("3e-5")
    assert dict(r.image_variants) == {"0.5K": D("0.06"), "4K": D("0.16")}


def test_size_prefixed_image_keys_fold_into_the_base_model() -> None:
    entries = convert(
        {
            "gpt-image-1": {
                "litellm_provider": "openai",
                "mode": "image_generation",
                "input_cost_per_token": 5e-6,
                "output_cost_per_image_token": 4e-5,
            },
            "high/1024-x-1536/gpt-image-1": {
                "litellm_provider": "openai",
                "mode": "image_generation",
                "input_cost_per_image": 0.25,
                "input_cost_per_pixel": 1.58945719e-07,
            },
            "1024-x-1024/gpt-image-1": {"litellm_provider": "openai", "output_cost_per_image": 0.042},
            # pixel-priced, and the base entry does not exist: it is created.
            "hd/1024-x-1792/dall-e-3": {
                "litellm_provider": "openai",
                "mode": "image_generation",
                "input_cost_per_pixel": 6.866455078125e-08,
                "output_cost_per_token": 0.0,
            },
            "azure/standard/1024-x-1024/dall-e-3": {
                "litellm_provider": "azure",
                "input_cost_per_pixel": 4.19617e-08,
            },
            "1024-x-1024/50-steps/bedrock/amazon.nova-canvas-v1:0": {
                "litellm_provider": "bedrock",
                "mode": "image_generation",
                "output_cost_per_image": 0.06,
            },
        }
    )
    assert set(entries) == {
        "openai/gpt-image-1",
        "openai/dall-e-3",
        "azure/dall-e-3",
        "bedrock/amazon.nova-canvas-v1:0",
    }
    gpt_image = entries["openai/gpt-image-1"].prices[-1].rates
    # input_cost_per_image wins over the pixel rate, as in LiteLLM's image calculator.
    assert dict(gpt_image.image_variants) == {"high/1024x1536": D("0.25"), "1024x1024": D("0.042")}
    assert gpt_image.input == D("5e-6")
    dalle = entries["openai/dall-e-3"]
    assert dalle.mode == "image_generation"
    # pixel rate × width × height, exactly
    assert dict(dalle.prices[-1].rates.image_variants) == {
        "hd/1024x1792": D("6.866455078125e-08") * 1024 * 1792
    }
    assert dalle.prices[-1].rates.image_variants["hd/1024x1792"] == D("0.126")
    azure = entries["azure/dall-e-3"].prices[-1].rates.image_variants
    assert azure == {"standard/1024x1024": D("4.19617e-08") * 1024 * 1024}
    nova = entries["bedrock/amazon.nova-canvas-v1:0"].prices[-1].rates.image_variants
    assert dict(nova) == {"50-steps/1024x1024": D("0.06")}


def test_deepseek_cache_hit_is_cache_read_only_when_missing() -> None:
    entries = convert(
        {
            "deepseek/a": {"litellm_provider": "deepseek", "input_cost_per_token_cache_hit": 1.4e-8},
            "deepseek/b": {
                "litellm_provider": "deepseek",
                "input_cost_per_token_cache_hit": 1.4e-8,
                "cache_read_input_token_cost": 7e-9,
            },
        }
    )
    assert entries["deepseek/a"].prices[-1].rates.cache_read == D("1.4e-8")
    assert entries["deepseek/b"].prices[-1].rates.cache_read == D("7e-9")


def test_xai_thresholds_are_inclusive() -> None:
    e = one({"xai/grok-4": {"litellm_provider": "xai", "input_cost_per_token": 3e-6}})
    assert e.inclusive_thresholds and e.id == "xai/grok-4"
    assert "grok-4" in e.aliases  # first-party provider: the bare name works too


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("vertex_ai-language-models", "vertex_ai"),
        ("vertex_ai-anthropic_models", "vertex_ai"),
        ("vertex_ai-embedding-models", "vertex_ai"),
        ("bedrock_converse", "bedrock"),
        ("text-completion-openai", "openai"),
        ("fireworks_ai-embedding-models", "fireworks_ai"),
        ("azure_text", "azure"),
        ("cohere_chat", "cohere"),
        ("together_ai", "together_ai"),
        ("dashscope", "dashscope"),
    ],
)
def test_provider_spellings(spelling: str, canonical: str) -> None:
    assert litellm_provider_id(spelling) == canonical


def test_provider_prefixes_are_stripped_from_the_model_name() -> None:
    entries = convert(
        {
            "vertex_ai/claude-sonnet-4-5": {
                "litellm_provider": "vertex_ai-anthropic_models",
                "input_cost_per_token": 3e-6,
            },
            "anthropic.claude-3-haiku-20240307-v1:0": {
                "litellm_provider": "bedrock",
                "input_cost_per_token": 2.5e-7,
            },
            "bedrock/us-east-1/minimax.minimax-m2.1": {
                "litellm_provider": "bedrock",
                "input_cost_per_token": 3e-7,
            },
            "gemini-2.5-pro": {
                "litellm_provider": "vertex_ai-language-models",
                "input_cost_per_token": 1.25e-6,
            },
        }
    )
    assert set(entries) == {
        "vertex_ai/claude-sonnet-4-5",
        "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
        "bedrock/us-east-1/minimax.minimax-m2.1",
        "vertex_ai/gemini-2.5-pro",
    }
    assert entries["vertex_ai/gemini-2.5-pro"].aliases == ("gemini-2.5-pro",)


def test_collisions_merge_when_priced_alike_else_keep_the_key_as_id() -> None:
    entries = convert(
        {
            "deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 2.7e-7},
            "deepseek/deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 2.7e-7},
            "gemini-3-pro": {"litellm_provider": "vertex_ai-language-models", "input_cost_per_token": 2e-6},
            "vertex_ai/gemini-3-pro": {
                "litellm_provider": "vertex_ai-language-models",
                "input_cost_per_token": 4e-6,
            },
        }
    )
    assert set(entries) == {"deepseek/deepseek-chat", "vertex_ai/gemini-3-pro", "gemini-3-pro"}
    assert set(entries["deepseek/deepseek-chat"].aliases) == {"deepseek-chat"}
    # The key spelled like the id keeps the id; the other keeps its own key.
    assert entries["vertex_ai/gemini-3-pro"].prices[-1].rates.input == D("4e-6")
    assert entries["gemini-3-pro"].prices[-1].rates.input == D("2e-6")
    # deterministic: the same input in any order gives the same output
    again = litellm_to_entries(
        dict(
            reversed(
                list(
                    {
                        "vertex_ai/gemini-3-pro": {
                            "litellm_provider": "vertex_ai-language-models",
                            "input_cost_per_token": 4e-6,
                        },
                        "gemini-3-pro": {
                            "litellm_provider": "vertex_ai-language-models",
                            "input_cost_per_token": 2e-6,
                        },
                    }.items()
                )
            )
        )
    )
    assert [e["id"] for e in again] == ["gemini-3-pro", "vertex_ai/gemini-3-pro"]


def test_partial_operator_entries() -> None:
    entries = convert(
        {
            "gpt-4o": {"input_cost_per_token": "1e-6"},
            "azure/my-deployment": {"output_cost_per_token": 2e-6},
            "sample_spec": {"input_cost_per_token": 0.0, "litellm_provider": "one of ..."},
        }
    )
    assert set(entries) == {"gpt-4o", "azure/my-deployment"}
    custom = entries["gpt-4o"]
    assert custom.provider == "custom" and custom.prices[-1].rates.input == D("0.000001")
    assert custom.prices[-1].rates.output is None
    assert entries["azure/my-deployment"].provider == "azure"


def test_strings_and_exact_decimals() -> None:
    e = one(
        {"m": {"litellm_provider": "openai", "input_cost_per_token": "3e-7", "output_cost_per_token": 0.1}}
    )
    assert e.prices[-1].rates.input == D("0.0000003")
    assert e.prices[-1].rates.output == D("0.1")  # via repr, never the binary float


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"input_cost_per_token": "cheap"}, "input_cost_per_token"),
        ({"input_cost_per_token": -1e-6}, "input_cost_per_token"),
        ({"input_cost_per_token": True}, "input_cost_per_token"),
        ({"output_cost_per_token_above_200k_tokens": [1]}, "output_cost_per_token_above_200k_tokens"),
        ({"search_context_cost_per_query": {"search_context_size_huge": 1}}, "search_context_cost_per_query"),
        ({"tiered_pricing": [{"range": [0, "x"], "input_cost_per_token": 1e-6}]}, "tiered_pricing[0].range"),
        ({"input_cost_per_token": 1e-6, "max_input_tokens": "lots"}, "max_input_tokens"),
    ],
)
def test_bad_values_name_the_model_and_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogueFormatError) as exc:
        litellm_to_entries({"my-model": {"litellm_provider": "openai", **entry}})
    assert "'my-model'" in str(exc.value) and field in str(exc.value)


def test_not_an_object() -> None:
    with pytest.raises(CatalogueFormatError, match="'m'"):
        litellm_to_entries({"m": 3})


def test_whole_catalogue_dict_loads() -> None:
    data = litellm_to_catalogue(
        {
            "my-model": {
                "litellm_provider": "openai",
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
            }
        },
        name="operator:prices.json",
        version="prices",
        prices_checked=None,
    )
    assert data["format"] == "spendgate-catalogue/1" and data["version"] == "prices"
    cat = Catalogue.from_dict(data, name="operator")
    entry = cat.find("my-model")
    assert entry is not None and entry.id == "openai/my-model"
    assert cat.find("openai/my-model") is entry and cat.find("my-model", provider="openai") is entry

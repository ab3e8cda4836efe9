from __future__ import annotations

import copy
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from spendgate.core.usage import (
    Usage,
    UsageError,
    from_openai_chat,
    from_openai_completion,
    from_openai_embedding,
    from_openai_image,
    from_openai_responses,
    from_openai_speech,
    from_openai_transcription,
)


def ns(value: Any) -> Any:
    """A payload as SDK-like attribute objects (nested SimpleNamespace)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: ns(v) for k, v in value.items()})
    if isinstance(value, list):
        return [ns(v) for v in value]
    return value


def both(payload: dict[str, Any]) -> list[Any]:
    return [payload, ns(payload)]


CHAT: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}


def chat(**usage: Any) -> dict[str, Any]:
    payload = copy.deepcopy(CHAT)
    payload["usage"] = usage
    return payload


@pytest.mark.parametrize("payload", both(CHAT))
def test_chat(payload: Any) -> None:
    expected = Usage(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)
    assert from_openai_chat(payload) == expected
    assert from_openai_chat(payload["usage"] if isinstance(payload, dict) else payload.usage) == expected


def test_chat_reasoning_model() -> None:
    payload = chat(
        prompt_tokens=1200,
        completion_tokens=900,
        total_tokens=2100,
        prompt_tokens_details={"cached_tokens": 0},
        completion_tokens_details={"reasoning_tokens": 640},
    )
    assert from_openai_chat(payload) == Usage(input_tokens=1200, output_tokens=900, reasoning_tokens=640)


def test_chat_audio_and_image_tokens() -> None:
    payload = chat(
        prompt_tokens=120,
        completion_tokens=180,
        total_tokens=300,
        prompt_tokens_details={"cached_tokens": 0, "audio_tokens": 35, "image_tokens": 40},
        completion_tokens_details={"reasoning_tokens": 0, "audio_tokens": 150, "text_tokens": 30},
    )
    for p in both(payload):
        assert from_openai_chat(p) == Usage(
            input_tokens=120,
            input_audio_tokens=35,
            input_image_tokens=40,
            output_tokens=180,
            output_audio_tokens=150,
        )


def test_chat_minimal_usage_without_details() -> None:
    """Many OpenAI-compatible servers (vLLM, Ollama) send only the three totals."""
    payload = ns({"usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}})
    assert from_openai_chat(payload) == Usage(input_tokens=12, output_tokens=8)


def test_chat_integral_floats_are_accepted() -> None:
    assert from_openai_chat({"prompt_tokens": 12.0, "completion_tokens": 3.0}) == Usage(
        input_tokens=12, output_tokens=3
    )


def test_chat_url_citation_counts_one_web_search() -> None:
    payload = copy.deepcopy(CHAT)
    payload["model"] = "gpt-4o-search-preview"
    payload["choices"][0]["message"]["annotations"] = [
        {"type": "url_citation", "url_citation": {"url": "https://a.example", "title": "A"}},
        {"type": "url_citation", "url_citation": {"url": "https://b.example", "title": "B"}},
    ]
    for p in both(payload):
        assert from_openai_chat(p).web_search_requests == 1
    # The usage alone cannot show a search.
    assert from_openai_chat(payload["usage"]).web_search_requests == 0


def test_deepseek_cache_hits() -> None:
    payload = chat(
        prompt_tokens=1500,
        completion_tokens=200,
        total_tokens=1700,
        prompt_cache_hit_tokens=1024,
        prompt_cache_miss_tokens=476,
        completion_tokens_details={"reasoning_tokens": 150},
    )
    for p in both(payload):
        assert from_openai_chat(p) == Usage(
            input_tokens=1500, cache_read_tokens=1024, output_tokens=200, reasoning_tokens=150
        )


def test_prompt_tokens_details_win_over_deepseek_fields() -> None:
    payload = chat(
        prompt_tokens=1500,
        completion_tokens=200,
        prompt_tokens_details={"cached_tokens": 1024},
        prompt_cache_hit_tokens=1024,
        prompt_cache_miss_tokens=476,
    )
    assert from_openai_chat(payload).cache_read_tokens == 1024


def test_xai_reasoning_outside_completion_tokens() -> None:
    """xAI: total = prompt + completion + reasoning; reasoning is added to output."""
    payload = chat(
        prompt_tokens=10120,
        completion_tokens=1499,
        total_tokens=14428,
        prompt_tokens_details={"cached_tokens": 128, "text_tokens": 10120},
        completion_tokens_details={"reasoning_tokens": 2809},
    )
    assert from_openai_chat(payload) == Usage(
        input_tokens=10120, cache_read_tokens=128, output_tokens=4308, reasoning_tokens=2809
    )


def test_reasoning_above_completion_without_total_is_extra() -> None:
    payload = chat(prompt_tokens=14, completion_tokens=2, completion_tokens_details={"reasoning_tokens": 317})
    assert from_openai_chat(payload) == Usage(input_tokens=14, output_tokens=319, reasoning_tokens=317)


def test_xai_server_side_web_search_count() -> None:
    payload = copy.deepcopy(CHAT)
    payload["choices"][0]["message"]["annotations"] = [{"type": "url_citation", "url": "https://x.example"}]
    payload["usage"] = {
        "prompt_tokens": 500,
        "completion_tokens": 100,
        "total_tokens": 600,
        "server_side_tool_usage_details": {"web_search_calls": 3, "x_search_calls": 0},
    }
    assert from_openai_chat(payload).web_search_requests == 3


def test_openrouter_cache_writes() -> None:
    payload = chat(
        prompt_tokens=3000,
        completion_tokens=10,
        prompt_tokens_details={"cached_tokens": 0, "cache_write_tokens": 2900},
    )
    assert from_openai_chat(payload) == Usage(input_tokens=3000, cache_write_tokens=2900, output_tokens=10)


def test_completion_legacy() -> None:
    payload = {
        "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
        "object": "text_completion",
        "created": 1589478378,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [
            {"text": "\n\nThis is indeed a test", "index": 0, "logprobs": None, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }
    for p in both(payload):
        assert from_openai_completion(p) == Usage(input_tokens=5, output_tokens=7)


def test_embedding() -> None:
    payload = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    for p in both(payload):
        assert from_openai_embedding(p) == Usage(input_tokens=8)
    assert from_openai_embedding({"usage": {"total_tokens": 9}}) == Usage(input_tokens=9)
    with pytest.raises(UsageError, match="embedding"):
        from_openai_embedding({"data": []})


RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "web_search_call", "id": "ws_2", "status": "completed"},
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "In a peaceful grove beneath a silver moon...",
                    "annotations": [{"type": "url_citation", "url": "https://a.example"}],
                }
            ],
        },
    ],
    "usage": {
        "input_tokens": 3280,
        "input_tokens_details": {"cached_tokens": 2048},
        "output_tokens": 356,
        "output_tokens_details": {"reasoning_tokens": 128},
        "total_tokens": 3636,
    },
}


@pytest.mark.parametrize("payload", both(RESPONSE))
def test_responses(payload: Any) -> None:
    assert from_openai_responses(payload) == Usage(
        input_tokens=3280,
        cache_read_tokens=2048,
        output_tokens=356,
        reasoning_tokens=128,
        web_search_requests=2,
    )


def test_responses_usage_alone() -> None:
    assert from_openai_responses(RESPONSE["usage"]) == Usage(
        input_tokens=3280, cache_read_tokens=2048, output_tokens=356, reasoning_tokens=128
    )


def test_responses_without_usage_raises() -> None:
    payload = dict(RESPONSE, usage=None, status="in_progress")
    with pytest.raises(UsageError, match="no usage"):
        from_openai_responses(payload)


def test_image_dalle3_per_image() -> None:
    payload = {
        "created": 1713833628,
        "data": [{"url": "https://img.example/1.png", "revised_prompt": "A cat"}],
    }
    for p in both(payload):
        assert from_openai_image(p, n=1, size="1024x1024", quality="hd") == Usage(
            images=1, image_size="1024x1024", image_quality="hd"
        )


def test_image_count_falls_back_to_n() -> None:
    assert from_openai_image(None, n=2, size="512x512").images == 2


def test_image_gpt_image_1_tokens() -> None:
    payload = {
        "created": 1713833628,
        "background": "opaque",
        "data": [{"b64_json": "iVBORw0K"}, {"b64_json": "iVBORw0K"}],
        "output_format": "png",
        "quality": "high",
        "size": "1024x1536",
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"image_tokens": 40, "text_tokens": 10},
            "output_tokens": 6240,
            "total_tokens": 6290,
        },
    }
    expected = Usage(
        input_tokens=50,
        input_image_tokens=40,
        output_tokens=6240,
        output_image_tokens=6240,
        images=2,
        image_size="1024x1536",
        image_quality="high",
    )
    for p in both(payload):
        # The response says what was produced; "auto" in the request does not win.
        assert from_openai_image(p, size="auto", quality="auto") == expected


def test_image_output_details_when_given() -> None:
    payload = {
        "data": [{"b64_json": "x"}],
        "usage": {
            "input_tokens": 20,
            "output_tokens": 1100,
            "output_tokens_details": {"image_tokens": 1056, "text_tokens": 44},
        },
    }
    assert from_openai_image(payload).output_image_tokens == 1056


def test_transcription_duration_usage() -> None:
    payload = {"text": "Imagine the wildest idea", "usage": {"type": "duration", "seconds": 9}}
    for p in both(payload):
        assert from_openai_transcription(p) == Usage(seconds=Decimal(9))


def test_transcription_token_usage() -> None:
    payload = {
        "text": "Imagine the wildest idea",
        "usage": {
            "type": "tokens",
            "input_tokens": 14,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
            "output_tokens": 45,
            "total_tokens": 59,
        },
    }
    for p in both(payload):
        assert from_openai_transcription(p) == Usage(input_tokens=14, input_audio_tokens=14, output_tokens=45)


def test_transcription_verbose_json_duration() -> None:
    payload = {
        "task": "transcribe",
        "language": "english",
        "duration": 8.470000267028809,
        "text": "The beach",
    }
    for p in both(payload):
        assert from_openai_transcription(p).seconds == Decimal("8.470000267028809")


def test_transcription_plain_text_needs_a_duration() -> None:
    assert from_openai_transcription("The beach", duration_seconds=Decimal("12.5")) == Usage(
        seconds=Decimal("12.5")
    )
    assert from_openai_transcription(duration_seconds=3).seconds == Decimal(3)
    with pytest.raises(UsageError, match="duration"):
        from_openai_transcription("The beach")


def test_speech_bills_characters() -> None:
    assert from_openai_speech("Hello, world!") == Usage(input_characters=13)
    assert from_openai_speech("héllo ✓") == Usage(input_characters=7)
    assert from_openai_speech(4096) == Usage(input_characters=4096)
    with pytest.raises(UsageError):
        from_openai_speech(-1)


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"prompt_tokens": -1, "completion_tokens": 3}, "usage.prompt_tokens"),
        ({"prompt_tokens": "12", "completion_tokens": 3}, "usage.prompt_tokens"),
        ({"prompt_tokens": 12, "completion_tokens": True}, "usage.completion_tokens"),
        ({"prompt_tokens": 12, "completion_tokens": 3.5}, "usage.completion_tokens"),
        (
            {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": "4"}},
            "usage.prompt_tokens_details.cached_tokens",
        ),
        (
            {
                "prompt_tokens": 12,
                "completion_tokens": 3,
                "completion_tokens_details": {"reasoning_tokens": -2},
            },
            "usage.completion_tokens_details.reasoning_tokens",
        ),
        (
            {"prompt_tokens": 12, "completion_tokens": 3, "prompt_cache_hit_tokens": False},
            "prompt_cache_hit_tokens",
        ),
        ({"input_tokens": -5, "output_tokens": 1}, "usage.input_tokens"),
    ],
)
def test_bad_counts_raise_naming_the_field(usage: dict[str, Any], field: str) -> None:
    with pytest.raises(UsageError, match=field.replace(".", r"\.")):
        from_openai_chat({"usage": usage})
    with pytest.raises(UsageError, match=field.replace(".", r"\.")):
        from_openai_chat(ns({"usage": usage}))


def test_cache_larger_than_prompt_is_refused() -> None:
    with pytest.raises(UsageError, match="cache_read_tokens"):
        from_openai_chat(
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}}
        )


def test_missing_usage_raises() -> None:
    with pytest.raises(UsageError, match="no usage"):
        from_openai_chat(dict(CHAT, usage=None))
    with pytest.raises(UsageError, match="no usage"):
        from_openai_chat(ns({"id": "chatcmpl-1", "choices": []}))
    with pytest.raises(UsageError):
        from_openai_chat(None)
    with pytest.raises(UsageError, match="neither"):
        from_openai_chat({"usage": {"total_tokens": 5}})


def test_bad_response_fields_raise() -> None:
    with pytest.raises(UsageError, match="size"):
        from_openai_image({"data": [], "size": 1024})
    with pytest.raises(UsageError, match="data"):
        from_openai_image({"data": "abc"})
    with pytest.raises(UsageError, match=r"usage\.seconds"):
        from_openai_transcription({"usage": {"type": "duration", "seconds": -3}})


def test_litellms_names_for_an_anthropic_models_cache_writes_are_read() -> None:
    """A chat usage in LiteLLM's shape for an Anthropic model (and spendgate's translation of
    a message): the writes from ``cache_creation_input_tokens`` or the details' names, the
    1-hour ones from ``cache_creation_token_details``."""
    details = {"cached_tokens": 30, "cache_creation_token_details": {"ephemeral_1h_input_tokens": 8}}
    litellm = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "prompt_tokens_details": details,
    }
    expected = Usage(
        input_tokens=100,
        cache_read_tokens=30,
        cache_write_tokens=20,
        cache_write_1h_tokens=8,
        output_tokens=5,
    )
    assert from_openai_chat(litellm) == expected
    in_details = {**details, "cache_creation_tokens": 20}
    assert (
        from_openai_chat(
            {**litellm, "cache_creation_input_tokens": None, "prompt_tokens_details": in_details}
        )
        == expected
    )
    assert (
        from_openai_chat({**litellm, "prompt_tokens_details": {**details, "cache_write_tokens": 20}})
        == expected
    )

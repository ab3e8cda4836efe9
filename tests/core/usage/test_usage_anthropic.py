from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from spendgate.core.usage import Usage, UsageError, from_anthropic_message


def ns(value: Any) -> Any:
    """A payload as SDK-like attribute objects (nested SimpleNamespace)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: ns(v) for k, v in value.items()})
    if isinstance(value, list):
        return [ns(v) for v in value]
    return value


MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 1000,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 5000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 300,
        "server_tool_use": None,
        "service_tier": "standard",
    },
}

WORKED = Usage(input_tokens=8000, cache_read_tokens=5000, cache_write_tokens=2000, output_tokens=300)


def message(**usage: Any) -> dict[str, Any]:
    payload = copy.deepcopy(MESSAGE)
    payload["usage"] = usage
    return payload


@pytest.mark.parametrize("payload", [MESSAGE, ns(MESSAGE), MESSAGE["usage"], ns(MESSAGE["usage"])])
def test_worked_example(payload: Any) -> None:
    assert from_anthropic_message(payload) == WORKED


def test_one_hour_cache_writes() -> None:
    payload = message(
        input_tokens=50,
        cache_creation_input_tokens=3000,
        cache_read_input_tokens=0,
        cache_creation={"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        output_tokens=20,
    )
    assert from_anthropic_message(ns(payload)) == Usage(
        input_tokens=3050, cache_write_tokens=3000, cache_write_1h_tokens=2000, output_tokens=20
    )


def test_split_without_total() -> None:
    payload = message(
        input_tokens=50,
        cache_creation={"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        output_tokens=20,
    )
    assert from_anthropic_message(payload) == Usage(
        input_tokens=3050, cache_write_tokens=3000, cache_write_1h_tokens=2000, output_tokens=20
    )


def test_sdk_object_with_null_cache_fields() -> None:
    """Older responses (and the SDK's optional fields) leave cache counts null."""
    payload = ns(
        message(
            input_tokens=25,
            cache_creation_input_tokens=None,
            cache_read_input_tokens=None,
            cache_creation=None,
            output_tokens=12,
            server_tool_use=None,
        )
    )
    assert from_anthropic_message(payload) == Usage(input_tokens=25, output_tokens=12)


def test_web_search_requests() -> None:
    payload = message(
        input_tokens=6039,
        cache_creation_input_tokens=0,
        cache_read_input_tokens=0,
        output_tokens=931,
        server_tool_use={"web_search_requests": 2, "web_fetch_requests": 0},
    )
    assert from_anthropic_message(payload) == Usage(
        input_tokens=6039, output_tokens=931, web_search_requests=2
    )


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"input_tokens": -1, "output_tokens": 3}, "usage.input_tokens"),
        ({"input_tokens": 1, "output_tokens": "3"}, "usage.output_tokens"),
        (
            {"input_tokens": 1, "output_tokens": 3, "cache_read_input_tokens": True},
            "usage.cache_read_input_tokens",
        ),
        (
            {"input_tokens": 1, "output_tokens": 3, "cache_creation": {"ephemeral_1h_input_tokens": 2.5}},
            "usage.cache_creation.ephemeral_1h_input_tokens",
        ),
        (
            {"input_tokens": 1, "output_tokens": 3, "server_tool_use": {"web_search_requests": -1}},
            "usage.server_tool_use.web_search_requests",
        ),
    ],
)
def test_bad_counts_raise_naming_the_field(usage: dict[str, Any], field: str) -> None:
    for payload in ({"usage": usage}, ns({"usage": usage})):
        with pytest.raises(UsageError, match=field.replace(".", r"\.")):
            from_anthropic_message(payload)


def test_split_larger_than_total_is_refused() -> None:
    payload = message(
        input_tokens=1,
        cache_creation_input_tokens=100,
        cache_creation={"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 200},
        output_tokens=1,
    )
    with pytest.raises(UsageError, match="cache_write_1h_tokens"):
        from_anthropic_message(payload)


def test_missing_usage_raises() -> None:
    with pytest.raises(UsageError, match="no usage"):
        from_anthropic_message({"id": "msg_1", "type": "message", "content": []})
    with pytest.raises(UsageError, match="neither"):
        from_anthropic_message({"usage": {"service_tier": "standard"}})
    with pytest.raises(UsageError):
        from_anthropic_message(None)

"""Anthropic messages against the mock provider with the official anthropic SDK."""

from __future__ import annotations

import anthropic
import httpx
from anthropic.types import MessageParam
from mock_helpers import chat_prompt, tokens

from spendgate.providers.mock import MockServer

MODEL = "claude-haiku-4-5"
SYSTEM = "You answer in haiku."
MESSAGES: list[MessageParam] = [{"role": "user", "content": "Write about the sea and the wind, please."}]


def test_usage_and_text(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model=MODEL, max_tokens=11, system=SYSTEM, messages=MESSAGES)
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == chat_prompt(MESSAGES, SYSTEM)
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == 11
    block = message.content[0]
    assert block.type == "text" and tokens(block.text) == 11


def test_cache_reads_and_writes_are_excluded_from_input_tokens(anthropic_client: anthropic.Anthropic) -> None:
    prompt = chat_prompt(MESSAGES, SYSTEM)
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=4,
        system=SYSTEM,
        messages=MESSAGES,
        extra_headers={
            "x-mock-cached-tokens": "6",
            "x-mock-cache-write-tokens": "5",
            "x-mock-cache-write-1h-tokens": "2",
        },
    )
    usage = message.usage
    assert usage.cache_read_input_tokens == 6
    assert usage.cache_creation_input_tokens == 7
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 5
    assert usage.cache_creation.ephemeral_1h_input_tokens == 2
    assert usage.input_tokens == prompt - 13


def test_thinking_tokens_are_part_of_output(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=MESSAGES,
        extra_headers={"x-mock-reasoning-tokens": "4"},
    )
    assert message.usage.output_tokens == 10
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 4
    assert message.content[0].type == "text" and tokens(message.content[0].text) == 6


def test_stream_events(anthropic_client: anthropic.Anthropic) -> None:
    stream = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=5,
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-mock-cached-tokens": "3"},
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 5
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == chat_prompt(MESSAGES) - 3
    assert start.message.usage.cache_read_input_tokens == 3
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.usage.output_tokens == 5  # cumulative, not an increment


def test_stream_helper_accumulates(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert tokens(text) == 8
    assert final.usage.output_tokens == 8
    assert final.usage.input_tokens == chat_prompt(MESSAGES)


async def test_async_stream(async_anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with async_anthropic_client.messages.stream(
        model=MODEL,
        max_tokens=3,
        messages=MESSAGES,
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert tokens(text) == 3 and final.usage.output_tokens == 3


def test_content_blocks_and_tool_results_are_counted(anthropic_client: anthropic.Anthropic) -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]}
            ],
        },
    ]
    count = anthropic_client.messages.count_tokens(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert count.input_tokens == chat_prompt(messages) == (4 + 5) + 4 + (4 + 2)


def test_x_api_key_is_tracked_per_key(anthropic_client: anthropic.Anthropic, mock: MockServer) -> None:
    anthropic_client.messages.create(model=MODEL, max_tokens=1, messages=MESSAGES)
    stats = mock.stats()
    assert stats["by_key"]["ak-test"]["requests"] == 1
    assert stats["by_path"] == {"/v1/messages": 1}


def test_errors_have_the_anthropic_shape(anthropic_client: anthropic.Anthropic, mock: MockServer) -> None:
    try:
        anthropic_client.messages.create(
            model=MODEL,
            max_tokens=1,
            messages=MESSAGES,
            extra_headers={"x-mock-status": "429", "x-mock-retry-after": "7"},
        )
    except anthropic.RateLimitError as exc:
        assert exc.response.headers["retry-after"] == "7"
        assert exc.body == {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "mock: injected status 429"},
        }
    else:  # pragma: no cover
        raise AssertionError("no error")
    response = httpx.post(
        f"{mock.base_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 1, "messages": MESSAGES},
        headers={"x-mock-status": "529", "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert response.headers["request-id"].startswith("req_")

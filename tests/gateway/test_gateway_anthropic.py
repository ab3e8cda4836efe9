"""Anthropic: /v1/messages passed through for Anthropic clients, and OpenAI chat requests
translated to an Anthropic deployment and back, usage and cost included."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
from gateway_helpers import Ledger
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolUnionParam

import spendgate
from spendgate.core.usage import from_anthropic_message
from spendgate.providers.mock import MockServer

MODEL = "claude-sonnet-4-6"


def test_messages_native(anthropic_client: anthropic.Anthropic, ledger: Ledger) -> None:
    raw = anthropic_client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=11,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello, Claude"}],
        extra_headers={"x-mock-cached-tokens": "3", "x-mock-cache-write-tokens": "2"},
    )
    message = raw.parse()
    usage = from_anthropic_message(message.model_dump())
    rows = ledger.operation(raw.headers["x-spendgate-request-id"], 1)
    row = rows[0]
    assert row["provider"] == "anthropic" and row["endpoint"] == "/v1/messages"
    assert (
        row["input_tokens"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
        row["output_tokens"],
    ) == (
        usage.input_tokens,
        3,
        2,
        11,
    )
    assert row["cost_nanos"] == spendgate.price(MODEL, usage).total_nanos > 0


def test_messages_native_stream_costs_the_same(anthropic_client: anthropic.Anthropic, ledger: Ledger) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 13,
        "messages": [{"role": "user", "content": "Stream to me"}],
    }
    plain = anthropic_client.messages.with_raw_response.create(**kwargs)
    plain_row = ledger.operation(plain.headers["x-spendgate-request-id"], 1)[0]
    costs = []
    with anthropic_client.messages.stream(**kwargs) as stream:
        text = ""
        for event in stream:
            if event.type == "text":
                text += event.text
            elif event.type == "message_delta":
                costs.append((event.usage.model_extra or {}).get("cost"))
        request_id = stream.response.headers["x-spendgate-request-id"]
    assert text
    row = ledger.operation(request_id, 1)[0]
    assert row["status"] == "success" and not row["estimated"]
    assert row["cost_nanos"] == plain_row["cost_nanos"] > 0
    # The final usage (message_delta) carries the cost the ledger recorded.
    assert costs == [float(spendgate.from_nano(row["cost_nanos"]))]


async def test_messages_native_async(
    async_anthropic_client: anthropic.AsyncAnthropic, ledger: Ledger
) -> None:
    raw = await async_anthropic_client.messages.with_raw_response.create(
        model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
    )
    message = await raw.parse()
    row = ledger.operation(raw.headers["x-spendgate-request-id"], 1)[0]
    assert (
        row["cost_nanos"] == spendgate.price(MODEL, from_anthropic_message(message.model_dump())).total_nanos
    )


def test_openai_chat_translated_to_anthropic(
    client: openai.OpenAI, anthropic_client: anthropic.Anthropic, ledger: Ledger
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello, Claude"},
    ]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=6)
    reply = raw.parse()
    assert reply.object == "chat.completion" and reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    row = ledger.operation(raw.headers["x-spendgate-request-id"], 1)[0]
    assert row["provider"] == "anthropic" and row["endpoint"] == "/v1/chat/completions"
    assert (row["input_tokens"], row["output_tokens"]) == (reply.usage.prompt_tokens, 6)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content
    final = chunks[-1]
    assert final.usage is not None and final.usage.completion_tokens == 6
    streamed = ledger.operation(stream.response.headers["x-spendgate-request-id"], 1)[0]
    assert streamed["cost_nanos"] == row["cost_nanos"]
    assert (final.usage.model_extra or {})["cost"] == float(spendgate.from_nano(row["cost_nanos"]))


def test_tools_are_translated(client: openai.OpenAI, mock: MockServer) -> None:
    tools: list[ChatCompletionToolUnionParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=messages, tools=tools, max_tokens=5)
    assert reply.choices[0].message.content
    sent = mock.requests()[-1]["body"]
    if isinstance(sent, str):
        sent = json.loads(sent)
    assert sent["tools"][0]["name"] == "get_weather" and "input_schema" in sent["tools"][0]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "sunny",
    }


def test_translated_chat_costs_the_same_as_native(
    client: openai.OpenAI, anthropic_client: anthropic.Anthropic, ledger: Ledger
) -> None:
    chat = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, Claude"}],
        max_tokens=6,
    )
    native = anthropic_client.messages.with_raw_response.create(
        model=MODEL, system="Be brief.", messages=[{"role": "user", "content": "Hello, Claude"}], max_tokens=6
    )
    chat_row = ledger.operation(chat.headers["x-spendgate-request-id"], 1)[0]
    native_row = ledger.operation(native.headers["x-spendgate-request-id"], 1)[0]
    assert chat_row["cost_nanos"] == native_row["cost_nanos"] > 0

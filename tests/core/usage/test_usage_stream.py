from __future__ import annotations

import copy
import itertools
import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.core.usage import (
    AnthropicStreamAccumulator,
    OpenAIResponsesStreamAccumulator,
    OpenAIStreamAccumulator,
    Usage,
    UsageError,
    from_anthropic_message,
    from_openai_chat,
    from_openai_responses,
)


def ns(value: Any) -> Any:
    """A payload as SDK-like attribute objects (nested SimpleNamespace)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: ns(v) for k, v in value.items()})
    if isinstance(value, list):
        return [ns(v) for v in value]
    return value


def sse(
    events: list[dict[str, Any]], *, named: bool = False, done: bool = False, crlf: bool = False
) -> bytes:
    """Events as an SSE byte stream, with a comment line as servers send for keep-alive."""
    nl = "\r\n" if crlf else "\n"
    out = [f": keep-alive{nl}{nl}"]
    for event in events:
        head = f"event: {event['type']}{nl}" if named else ""
        out.append(f"{head}data: {json.dumps(event, ensure_ascii=False)}{nl}{nl}")
    if done:
        out.append(f"data: [DONE]{nl}{nl}")
    return "".join(out).encode()


def split_at(blob: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({0, len(blob), *points})
    return [blob[a:b] for a, b in itertools.pairwise(cuts)]


def state(acc: Any) -> tuple[Any, ...]:
    return (acc.usage(), acc.text, acc.model, acc.finish_reason, acc.saw_usage, acc.complete)


# --- OpenAI chat -------------------------------------------------------------------------

CHAT_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
}
CHAT_TEXT = "Héllo ✓ 世界, here is the answer."


def chat_chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_fc9f1d7035",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }
    chunk.update(extra)
    return chunk


def chat_chunks(*, annotations: bool = False) -> list[dict[str, Any]]:
    azure_prelude = chat_chunk(None, model="", id="", prompt_filter_results=[{"prompt_index": 0}])
    chunks = [
        azure_prelude,
        chat_chunk({"role": "assistant", "content": "", "refusal": None}),
        chat_chunk({"content": CHAT_TEXT[:7]}),
        chat_chunk({"content": CHAT_TEXT[7:]}),
    ]
    if annotations:
        chunks.append(
            chat_chunk({"annotations": [{"type": "url_citation", "url_citation": {"url": "https://a.x"}}]})
        )
    chunks.append(chat_chunk({}, "stop"))
    chunks.append(chat_chunk(None, usage=CHAT_USAGE))
    return chunks


def chat_response(*, annotations: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": CHAT_TEXT}
    if annotations:
        message["annotations"] = [{"type": "url_citation", "url_citation": {"url": "https://a.x"}}]
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": CHAT_USAGE,
    }


@pytest.mark.parametrize("annotations", [False, True])
@pytest.mark.parametrize("wrap", [lambda c: c, ns, json.dumps, lambda c: ("data: " + json.dumps(c)).encode()])
def test_chat_stream_equals_unstreamed(annotations: bool, wrap: Any) -> None:
    acc = OpenAIStreamAccumulator()
    for chunk in chat_chunks(annotations=annotations):
        acc.add(wrap(chunk))
    acc.add("data: [DONE]")
    expected = from_openai_chat(chat_response(annotations=annotations))
    assert acc.usage() == expected
    assert expected.web_search_requests == (1 if annotations else 0)
    assert acc.text == CHAT_TEXT
    assert acc.model == "gpt-4o-2024-08-06"
    assert acc.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert acc.finish_reason == "stop"
    assert acc.saw_usage and acc.complete


def test_chat_stream_without_usage_keeps_text_for_estimation() -> None:
    acc = OpenAIStreamAccumulator()
    for chunk in chat_chunks()[:-1]:
        acc.add(chunk)
    assert acc.usage() is None
    assert not acc.saw_usage and not acc.complete
    assert acc.text == CHAT_TEXT
    assert acc.finish_reason == "stop"


def test_chat_stream_reasoning_and_tool_calls_count_as_text() -> None:
    acc = OpenAIStreamAccumulator()
    acc.add(chat_chunk({"role": "assistant", "reasoning_content": "Let me think. "}))
    acc.add(chat_chunk({"reasoning": "Still thinking. "}))
    acc.add(chat_chunk({"content": "Calling. "}))
    acc.add(
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_w", "arguments": ""},
                    }
                ]
            }
        )
    )
    acc.add(chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}))
    acc.add(chat_chunk({}, "tool_calls"))
    assert acc.text == 'Let me think. Still thinking. Calling. get_w{"city": "Paris"}'
    assert acc.finish_reason == "tool_calls"


def test_legacy_completion_stream() -> None:
    acc = OpenAIStreamAccumulator()
    base = {"id": "cmpl-1", "object": "text_completion", "model": "gpt-3.5-turbo-instruct"}
    acc.add({**base, "choices": [{"text": "This is", "index": 0, "finish_reason": None}]})
    acc.add({**base, "choices": [{"text": " a test", "index": 0, "finish_reason": "length"}]})
    acc.add(
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    )
    assert acc.text == "This is a test"
    assert acc.usage() == Usage(input_tokens=5, output_tokens=7)


def test_groq_usage_in_x_groq() -> None:
    acc = OpenAIStreamAccumulator()
    acc.add(chat_chunk({"content": "hi"}))
    acc.add(
        chat_chunk({}, "stop", x_groq={"id": "req_1", "usage": {"prompt_tokens": 9, "completion_tokens": 2}})
    )
    assert acc.usage() == Usage(input_tokens=9, output_tokens=2)


def test_continuous_usage_latest_wins() -> None:
    """vLLM's continuous usage stats: cumulative usage in every chunk."""
    acc = OpenAIStreamAccumulator()
    acc.add(chat_chunk({"content": "a"}, usage={"prompt_tokens": 9, "completion_tokens": 1}))
    assert acc.saw_usage and not acc.complete
    acc.add(chat_chunk({"content": "b"}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 2}))
    assert acc.usage() == Usage(input_tokens=9, output_tokens=2)
    assert acc.complete


def test_xai_stream_reasoning_outside_completion() -> None:
    acc = OpenAIStreamAccumulator()
    acc.add(chat_chunk({"content": "pong"}, "stop"))
    usage = {
        "prompt_tokens": 32,
        "completion_tokens": 1,
        "total_tokens": 419,
        "completion_tokens_details": {"reasoning_tokens": 386},
    }
    acc.add(chat_chunk(None, usage=usage))
    assert acc.usage() == Usage(input_tokens=32, output_tokens=387, reasoning_tokens=386)


def test_bad_chunks_raise() -> None:
    acc = OpenAIStreamAccumulator()
    with pytest.raises(UsageError, match="not JSON"):
        acc.add("data: {oops")
    acc.add(chat_chunk(None, usage={"prompt_tokens": -4, "completion_tokens": 1}))
    with pytest.raises(UsageError, match=r"usage\.prompt_tokens"):
        acc.usage()


# --- OpenAI Responses ---------------------------------------------------------------------

FINAL_RESPONSE: dict[str, Any] = {
    "id": "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",
    "object": "response",
    "created_at": 1741290958,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"id": "ws_1", "type": "web_search_call", "status": "completed"},
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi there ✓", "annotations": []}],
        },
    ],
    "usage": {
        "input_tokens": 37,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 11,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 48,
    },
}


def responses_events(final: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    final = FINAL_RESPONSE if final is None else final
    started = dict(final, status="in_progress", output=[], usage=None)
    return [
        {"type": "response.created", "sequence_number": 0, "response": started},
        {"type": "response.in_progress", "sequence_number": 1, "response": started},
        {
            "type": "response.output_item.added",
            "sequence_number": 2,
            "output_index": 0,
            "item": final["output"][0],
        },
        {
            "type": "response.output_item.done",
            "sequence_number": 3,
            "output_index": 0,
            "item": final["output"][0],
        },
        {"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_1", "delta": "Hi"},
        {"type": "response.output_text.delta", "sequence_number": 5, "item_id": "msg_1", "delta": " there ✓"},
        {"type": "response.output_text.done", "sequence_number": 6, "item_id": "msg_1", "text": "Hi there ✓"},
        {"type": "response.completed", "sequence_number": 7, "response": final},
    ]


@pytest.mark.parametrize("wrap", [lambda e: e, ns, json.dumps])
def test_responses_stream_equals_unstreamed(wrap: Any) -> None:
    acc = OpenAIResponsesStreamAccumulator()
    for event in responses_events():
        acc.add(wrap(event))
    expected = from_openai_responses(FINAL_RESPONSE)
    assert expected.web_search_requests == 1
    assert acc.usage() == expected
    assert acc.text == "Hi there ✓"
    assert acc.model == "gpt-4.1-2025-04-14"
    assert acc.finish_reason == "completed"
    assert acc.saw_usage and acc.complete


def test_responses_stream_web_searches_from_items_when_final_output_is_empty() -> None:
    acc = OpenAIResponsesStreamAccumulator()
    for event in responses_events()[:-1]:
        acc.add(event)
    assert acc.usage() is None and not acc.saw_usage
    acc.add({"type": "response.completed", "response": dict(FINAL_RESPONSE, output=[])})
    assert acc.usage() == from_openai_responses(FINAL_RESPONSE)


def test_responses_stream_incomplete() -> None:
    final = dict(FINAL_RESPONSE, status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    acc = OpenAIResponsesStreamAccumulator()
    for event in responses_events(final)[:-1]:
        acc.add(event)
    acc.add({"type": "response.incomplete", "response": final})
    assert acc.finish_reason == "max_output_tokens"
    assert acc.usage() == from_openai_responses(final)


# --- Anthropic ----------------------------------------------------------------------------

START_USAGE = {
    "input_tokens": 1000,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 5000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1500, "ephemeral_1h_input_tokens": 500},
    "output_tokens": 1,
    "service_tier": "standard",
}
FINAL_USAGE = dict(START_USAGE, output_tokens=300, server_tool_use={"web_search_requests": 2})


def anthropic_events(*, newer: bool) -> list[dict[str, Any]]:
    """A stream with thinking, text and a tool call; ``newer`` repeats counts in message_delta."""
    delta_usage: dict[str, Any] = {"output_tokens": 300}
    if newer:
        delta_usage = {
            "input_tokens": 1000,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 5000,
            "output_tokens": 300,
            "server_tool_use": {"web_search_requests": 2},
        }
    else:
        delta_usage["server_tool_use"] = {"web_search_requests": 2}
    message: dict[str, Any] = {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-20250514",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": START_USAGE,
    }
    return [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm. "}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQB"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Héllo ✓"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " 世界"}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"c'},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '": 1}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": delta_usage,
        },
        {"type": "message_stop"},
    ]


ANTHROPIC_EXPECTED = Usage(
    input_tokens=8000,
    cache_read_tokens=5000,
    cache_write_tokens=2000,
    cache_write_1h_tokens=500,
    output_tokens=300,
    web_search_requests=2,
)


@pytest.mark.parametrize("newer", [False, True])
@pytest.mark.parametrize("wrap", [lambda e: e, ns, json.dumps])
def test_anthropic_stream_equals_unstreamed(newer: bool, wrap: Any) -> None:
    acc = AnthropicStreamAccumulator()
    for event in anthropic_events(newer=newer):
        acc.add(wrap(event))
    assert from_anthropic_message({"usage": FINAL_USAGE}) == ANTHROPIC_EXPECTED
    assert acc.usage() == ANTHROPIC_EXPECTED
    assert acc.text == 'Hmm. Héllo ✓ 世界{"c": 1}'
    assert acc.model == "claude-sonnet-4-20250514"
    assert acc.id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
    assert acc.finish_reason == "tool_use"
    assert acc.saw_usage and acc.complete


def test_anthropic_stream_cut_after_start_is_not_complete() -> None:
    acc = AnthropicStreamAccumulator()
    for event in anthropic_events(newer=False)[:9]:
        acc.add(event)
    assert acc.saw_usage and not acc.complete
    assert acc.usage() == Usage(
        input_tokens=8000,
        cache_read_tokens=5000,
        cache_write_tokens=2000,
        cache_write_1h_tokens=500,
        output_tokens=1,
    )
    assert acc.finish_reason is None


def test_anthropic_delta_input_tokens_replace_start() -> None:
    """With server tools, message_delta carries the final (larger) input count."""
    acc = AnthropicStreamAccumulator()
    acc.add(
        {
            "type": "message_start",
            "message": {"model": "claude", "usage": {"input_tokens": 10, "output_tokens": 1}},
        }
    )
    acc.add({"type": "message_delta", "delta": {}, "usage": {"input_tokens": 900, "output_tokens": 50}})
    assert acc.usage() == Usage(input_tokens=900, output_tokens=50)


def test_anthropic_null_fields_in_delta_do_not_erase() -> None:
    acc = AnthropicStreamAccumulator()
    acc.add(ns({"type": "message_start", "message": {"model": "claude", "usage": START_USAGE}}))
    acc.add(
        ns(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {
                    "input_tokens": None,
                    "cache_creation_input_tokens": None,
                    "cache_read_input_tokens": None,
                    "output_tokens": 300,
                    "server_tool_use": None,
                },
            }
        )
    )
    assert acc.usage() == ANTHROPIC_EXPECTED.with_(web_search_requests=0)


def test_empty_streams() -> None:
    for acc in (OpenAIStreamAccumulator(), OpenAIResponsesStreamAccumulator(), AnthropicStreamAccumulator()):
        assert acc.usage() is None
        assert acc.text == ""
        assert acc.model is None and acc.finish_reason is None
        assert not acc.saw_usage and not acc.complete


# --- SSE bytes ----------------------------------------------------------------------------


def make(kind: str) -> tuple[Any, bytes, bytes]:
    """An accumulator factory and the same stream in LF and CRLF framing."""
    factory: type[OpenAIStreamAccumulator | OpenAIResponsesStreamAccumulator | AnthropicStreamAccumulator]
    if kind == "chat":
        events, factory, opts = chat_chunks(annotations=True), OpenAIStreamAccumulator, {"done": True}
    elif kind == "responses":
        events, factory, opts = responses_events(), OpenAIResponsesStreamAccumulator, {"named": True}
    else:
        events, factory, opts = anthropic_events(newer=True), AnthropicStreamAccumulator, {"named": True}
    return factory, sse(events, **opts), sse(events, crlf=True, **opts)


STREAMS = {kind: make(kind) for kind in ("chat", "responses", "anthropic")}
EXPECTED_USAGE = {
    "chat": from_openai_chat(chat_response(annotations=True)),
    "responses": from_openai_responses(FINAL_RESPONSE),
    "anthropic": ANTHROPIC_EXPECTED,
}


@given(
    kind=st.sampled_from(sorted(STREAMS)),
    crlf=st.booleans(),
    points=st.lists(st.integers(min_value=0, max_value=20_000), max_size=40),
)
def test_sse_split_anywhere_gives_the_same_result(kind: str, crlf: bool, points: list[int]) -> None:
    factory, lf_blob, crlf_blob = STREAMS[kind]
    blob = crlf_blob if crlf else lf_blob
    whole = factory()
    whole.feed_sse(blob)
    pieces = factory()
    for piece in split_at(blob, [p % (len(blob) + 1) for p in points]):
        pieces.feed_sse(piece)
    assert state(pieces) == state(whole)
    assert whole.usage() == EXPECTED_USAGE[kind]


def test_sse_byte_by_byte() -> None:
    factory, blob, _ = STREAMS["anthropic"]
    acc = factory()
    for i in range(len(blob)):
        acc.feed_sse(blob[i : i + 1])
    assert acc.usage() == ANTHROPIC_EXPECTED
    assert acc.text == 'Hmm. Héllo ✓ 世界{"c": 1}'


def test_sse_str_input_and_no_trailing_blank_line() -> None:
    acc = OpenAIStreamAccumulator()
    acc.feed_sse(sse(chat_chunks()).decode().removesuffix("\n"))
    assert acc.usage() == from_openai_chat(chat_response())


def test_sse_close_accounts_an_unterminated_last_line() -> None:
    acc = OpenAIStreamAccumulator()
    acc.feed_sse(sse(chat_chunks()).rstrip(b"\n"))
    assert acc.usage() is None
    acc.close()
    assert acc.usage() == from_openai_chat(chat_response())
    acc.close()  # idempotent
    OpenAIStreamAccumulator().close()  # nothing fed


def test_sse_close_reports_a_truncated_event() -> None:
    acc = AnthropicStreamAccumulator()
    acc.feed_sse(b'event: message_start\ndata: {"type": "message_start", "message": {"usage": {"input_')
    with pytest.raises(UsageError, match="not JSON"):
        acc.close()
    assert acc.usage() is None


def test_sse_multi_line_data_is_joined() -> None:
    acc = OpenAIStreamAccumulator()
    acc.feed_sse(b'data: {"choices": [],\ndata:  "usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n')
    assert acc.usage() == Usage(input_tokens=3, output_tokens=4)


def test_sse_malformed_event_raises_and_feeding_continues() -> None:
    acc = OpenAIStreamAccumulator()
    with pytest.raises(UsageError, match="not JSON"):
        acc.feed_sse(b'data: {"choices": [{"delta": {"content": "a"}}]}\n\ndata: {broken\n\nid: 7\n')
    assert acc.text == "a"
    acc.feed_sse(b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n')
    assert acc.usage() == Usage(input_tokens=1, output_tokens=1)


def test_usage_dicts_are_not_shared_with_the_caller() -> None:
    usage = copy.deepcopy(START_USAGE)
    acc = AnthropicStreamAccumulator()
    acc.add({"type": "message_start", "message": {"usage": usage}})
    acc.add({"type": "message_delta", "usage": {"output_tokens": 7}})
    assert usage == START_USAGE

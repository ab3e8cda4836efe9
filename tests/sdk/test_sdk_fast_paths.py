"""The metered transport's short paths (issue #14's overhead target) keep what the SDK sees.

Each call here goes to an in-process upstream (an httpx ``MockTransport``) whose requests
are kept, so what was sent and what the caller got can be compared with a plain client's:

* a complete answer is the upstream's own response (already read and decoded), with the
  cost header and a request id added and ``elapsed`` set (an upstream's own cost header
  replaced, its request id kept), and its price kept on it, each response its own;
* a stream asks the upstream for usage with the caller's body plus ``stream_options``,
  removes ``x-spendgate-*`` headers, and leaves the caller's request as it was;
* the ``api_base`` the callbacks see is that of each call's URL (it is kept per URL);
* the global budget counts spend without a limit, reserving nothing;
* the callbacks get the answer as the adapter parsed it (not parsed a second time).
"""

from __future__ import annotations

import gzip
from datetime import timedelta
from typing import Any
from unittest import mock

import openai
import orjson
import pytest

import spendgate
from spendgate.core.usage import from_openai_chat
from spendgate.sdk import callbacks, metering
from spendgate.sdk.budget import BUDGET
from spendgate.sdk.httpx_compat import module_of_type

HTTP: Any = module_of_type(openai.DefaultHttpxClient)
GPT = "gpt-4o"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about exact money, please."}]
USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": GPT,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": USAGE,
}


def _chunk(**fields: Any) -> bytes:
    base = {"id": "c-1", "object": "chat.completion.chunk", "created": 1, "model": GPT}
    return b"data: " + orjson.dumps({**base, **fields}) + b"\n\n"


STREAM = b"".join(
    [
        _chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "h"}, "finish_reason": None}]),
        _chunk(choices=[{"index": 0, "delta": {"content": "i"}, "finish_reason": None}]),
        _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        _chunk(choices=[], usage=USAGE),
        b"data: [DONE]\n\n",
    ]
)


class Upstream:
    """Answers chat calls (streamed when asked); keeps every request it got."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        body = orjson.loads(request.read())
        if body.get("stream"):
            return HTTP.Response(200, headers={"content-type": "text/event-stream"}, content=STREAM)
        headers = {"content-type": "application/json", "content-encoding": "gzip", "x-upstream": "1"}
        return HTTP.Response(200, headers=headers, content=gzip.compress(orjson.dumps(ANSWER)))


def _client(upstream: Upstream, base_url: str = "http://upstream.test/v1") -> openai.OpenAI:
    http_client = HTTP.Client(transport=HTTP.MockTransport(upstream))
    return openai.OpenAI(base_url=base_url, api_key="sk", max_retries=0, http_client=http_client)


def test_a_complete_answer_is_the_upstreams_response_with_the_cost_added() -> None:
    upstream = Upstream()
    plain = _client(upstream)
    metered = spendgate.instrument(plain)
    theirs = plain.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES, max_tokens=3)
    raw = metered.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES, max_tokens=3)
    completion = raw.parse()
    assert completion.choices[0].message.content == "hi"  # the gzip body, decoded once
    cost = spendgate.cost_of(completion)
    assert cost == spendgate.completion_cost(model=GPT, usage=from_openai_chat(ANSWER))
    # the upstream's headers as a plain client shows them, plus the cost and a request id
    added = {"x-spendgate-response-cost": f"{cost:f}".rstrip("0").rstrip("."), "x-request-id": raw.request_id}
    assert dict(raw.headers.items()) == {**dict(theirs.headers.items()), **added}
    assert raw.request_id is not None and raw.request_id.startswith("spendgate-")
    assert completion._request_id == raw.request_id
    assert isinstance(raw.http_response.elapsed, timedelta)
    assert spendgate.cost_of(raw) == cost
    assert spendgate.current_cost == cost


def test_an_upstream_cost_header_is_replaced_and_its_request_id_kept() -> None:
    def handler(request: Any) -> Any:
        headers = [
            ("X-Spendgate-Response-Cost", "9"),
            ("x-request-id", "req-up"),
            ("x-spendgate-response-cost", "8"),
        ]
        return HTTP.Response(200, headers=headers, json=ANSWER)

    http_client = HTTP.Client(transport=HTTP.MockTransport(handler))
    client = spendgate.openai.OpenAI(
        base_url="http://upstream.test/v1", api_key="sk", http_client=http_client
    )
    raw = client.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
    cost = spendgate.cost_of(raw.parse())
    assert raw.headers.get_list("x-spendgate-response-cost") == [f"{cost:f}".rstrip("0").rstrip(".")]
    assert raw.request_id == "req-up" and raw.headers.get_list("x-request-id") == ["req-up"]


def test_responses_sharing_one_extensions_dict_keep_each_their_price() -> None:
    """A transport may hand every response the same ``extensions`` dict: each call's price
    is still its own (the price is kept on a copy)."""
    shared: dict[str, Any] = {}
    outputs = iter([3, 300])

    def handler(request: Any) -> Any:
        output = next(outputs)
        usage = {"prompt_tokens": 11, "completion_tokens": output, "total_tokens": 11 + output}
        return HTTP.Response(200, json={**ANSWER, "usage": usage}, extensions=shared)

    http_client = HTTP.Client(transport=HTTP.MockTransport(handler))
    client = spendgate.openai.OpenAI(
        base_url="http://upstream.test/v1", api_key="sk", http_client=http_client
    )
    first, second = (
        client.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES) for _ in range(2)
    )
    assert shared == {}
    assert spendgate.cost_of(first) < spendgate.cost_of(second)
    assert spendgate.cost_of(first.http_response) == spendgate.cost_of(first.parse())
    assert spendgate.cost_of(second.http_response) == spendgate.cost_of(second.parse())


async def test_an_async_answer_has_its_cost_and_elapsed() -> None:
    upstream = Upstream()
    http_client = HTTP.AsyncClient(transport=HTTP.MockTransport(upstream))
    plain = openai.AsyncOpenAI(base_url="http://upstream.test/v1", api_key="sk", http_client=http_client)
    async with spendgate.instrument(plain) as client:
        raw = await client.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
    expected = spendgate.completion_cost(model=GPT, usage=from_openai_chat(ANSWER))
    assert spendgate.cost_of(raw.parse()) == expected
    assert raw.headers["content-encoding"] == "gzip"
    assert isinstance(raw.http_response.elapsed, timedelta)


def test_a_stream_asks_for_usage_with_the_callers_body_and_leaves_the_callers_request() -> None:
    upstream = Upstream()
    client = spendgate.instrument(_client(upstream))
    stream = client.chat.completions.create(
        model=GPT,
        messages=MESSAGES,
        max_tokens=3,
        stream=True,
        extra_headers={"x-spendgate-metadata": '{"team": "t1"}'},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi"
    assert all(c.usage is None for c in chunks)  # the usage chunk is withheld: not asked for
    [sent] = upstream.requests
    asked = orjson.loads(stream.response.request.content)
    assert "stream_options" not in asked  # the caller's request is as the SDK built it
    assert orjson.loads(sent.content) == {**asked, "stream_options": {"include_usage": True}}
    assert sent.headers["content-length"] == str(len(sent.content))
    assert not any(name.startswith("x-spendgate-") for name in sent.headers)
    assert stream.response.request.headers["x-spendgate-metadata"] == '{"team": "t1"}'
    assert spendgate.cost_of(stream) == spendgate.completion_cost(model=GPT, usage=from_openai_chat(ANSWER))


def test_a_stream_with_its_own_stream_options_asks_for_usage_too() -> None:
    upstream = Upstream()
    client = spendgate.instrument(_client(upstream))
    stream = client.chat.completions.create(
        model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": False}
    )
    assert all(c.usage is None for c in stream)
    [sent] = upstream.requests
    assert orjson.loads(sent.content)["stream_options"] == {"include_usage": True}
    assert sent.headers["content-length"] == str(len(sent.content))
    assert spendgate.cost_of(stream) > 0


def test_the_api_base_is_each_calls_own() -> None:
    seen: list[str] = []
    callbacks.success_callback.append(lambda kwargs, *rest: seen.append(kwargs["api_base"]))
    upstream = Upstream()
    bases = ["http://a.test/v1", "http://b.test:8080/proxy/v1", "http://a.test/v1/"]
    for _ in range(2):
        for base in bases:
            client = spendgate.instrument(_client(upstream, base))
            client.chat.completions.create(model=GPT, messages=MESSAGES)
    assert seen == ["http://a.test/v1", "http://b.test:8080/proxy/v1", "http://a.test/v1"] * 2


def test_without_a_limit_spend_is_counted_and_nothing_is_reserved() -> None:
    hold = BUDGET.reserve(0)
    assert BUDGET.reserved_nanos == 0
    BUDGET.settle(hold, 1_500)
    BUDGET.settle(hold, 1_500)  # once
    assert BUDGET.current_cost_nanos == 1_500
    spendgate.max_budget_duration = "1d"
    BUDGET.settle(BUDGET.reserve(0), 500)
    assert BUDGET.current_cost_nanos == 2_000
    BUDGET.settle(BUDGET.reserve(700), 0)  # a worst case is still reserved, then given back
    assert (BUDGET.reserved_nanos, BUDGET.current_cost_nanos) == (0, 2_000)


def test_callbacks_listen_only_when_registered() -> None:
    assert not callbacks.listening(success=True)
    assert not callbacks.listening(success=False)
    callbacks.failure_callback.append(lambda *args: None)
    assert callbacks.listening(success=False) and not callbacks.listening(success=True)
    callbacks.callbacks.append(callbacks.CustomLogger())
    assert callbacks.listening(success=True)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_callbacks_get_the_answer_the_adapter_parsed(kind: str) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 3},
    }
    answer = ANSWER if kind == "openai" else message
    body = orjson.dumps(answer)
    http_client = HTTP.Client(transport=HTTP.MockTransport(lambda request: HTTP.Response(200, content=body)))
    seen: list[Any] = []
    callbacks.success_callback.append(lambda kwargs, response, *rest: seen.append(response))
    loads = mock.Mock(side_effect=orjson.loads)
    with mock.patch.object(
        metering, "orjson", mock.Mock(loads=loads, JSONDecodeError=orjson.JSONDecodeError)
    ):
        if kind == "openai":
            client: Any = spendgate.openai.OpenAI(
                base_url="http://u.test/v1", api_key="sk", http_client=http_client
            )
            client.chat.completions.create(model=GPT, messages=MESSAGES)
        else:
            client = spendgate.anthropic.Anthropic(
                base_url="http://u.test", api_key="sk", http_client=http_client
            )
            client.messages.create(model="claude-sonnet-4-6", messages=MESSAGES, max_tokens=3)
    assert seen == [answer]
    assert all(call.args[0] != body for call in loads.call_args_list)  # the request body only

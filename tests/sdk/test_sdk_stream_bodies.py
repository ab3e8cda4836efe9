"""A stream's body reaches the SDK the same way whatever shape the upstream's answer has.

The metered transport reads a stream's body in one of three ways (issue #14, round 4):

* not read yet and not encoded (what a network transport gives): the upstream's own
  response is handed on, its raw body read through the call's translator;
* encoded (``content-encoding: gzip``): decoded by httpx first, in a second response;
* read already (a test transport's): its content is the body.

Each is checked here against a plain client: the same text, the usage chunk withheld, the
same cost as the gateway's pricing of the usage, the caller's request on the response,
the upstream's body closed once, and the request id the SDK reads.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import openai
import orjson
import pytest

import spendgate
from spendgate.core.usage import from_openai_chat
from spendgate.sdk.httpx_compat import module_of_type

HTTP: Any = module_of_type(openai.DefaultHttpxClient)
GPT = "gpt-4o"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about exact money, please."}]
USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


def _chunk(**fields: Any) -> bytes:
    base = {"id": "c-1", "object": "chat.completion.chunk", "created": 1, "model": GPT}
    return b"data: " + orjson.dumps({**base, **fields}) + b"\n\n"


EVENTS = [
    _chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "h"}, "finish_reason": None}]),
    _chunk(choices=[{"index": 0, "delta": {"content": "i"}, "finish_reason": None}]),
    _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    _chunk(choices=[], usage=USAGE),
    b"data: [DONE]\n\n",
]
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": GPT,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": USAGE,
}
COST = spendgate.completion_cost(model=GPT, usage=from_openai_chat({"usage": USAGE}))


class Body(HTTP.SyncByteStream, HTTP.AsyncByteStream):
    """An upstream body not read yet, in pieces split mid-event (as a socket gives it)."""

    def __init__(self, data: bytes) -> None:
        self.pieces = [data[i : i + 97] for i in range(0, len(data), 97)]
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


class Upstream:
    """Answers every chat call with the stream in the given shape; keeps what it sent."""

    def __init__(self, shape: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.shape = shape
        self.headers = headers or []
        self.sent: list[Any] = []
        self.bodies: list[Body] = []

    def __call__(self, request: Any) -> Any:
        if not orjson.loads(request.read()).get("stream"):
            headers = [("content-type", "application/json"), *self.headers]
            return HTTP.Response(200, headers=headers, content=orjson.dumps(ANSWER))
        data = b"".join(EVENTS)
        headers = [("content-type", "text/event-stream"), *self.headers]
        if self.shape == "read":
            response = HTTP.Response(200, headers=headers, content=data)
        else:
            if self.shape == "gzip":
                data = gzip.compress(data)
                headers.append(("content-encoding", "gzip"))
            body = Body(data)
            self.bodies.append(body)
            response = HTTP.Response(200, headers=headers, stream=body)
        self.sent.append(response)
        return response


def _client(upstream: Upstream) -> openai.OpenAI:
    http_client = HTTP.Client(transport=HTTP.MockTransport(upstream))
    return openai.OpenAI(
        base_url="http://upstream.test/v1", api_key="sk", max_retries=0, http_client=http_client
    )


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("shape", ["raw", "gzip", "read"])
def test_a_stream_reads_the_same_whatever_the_upstreams_body(shape: str) -> None:
    upstream = Upstream(shape)
    plain = [
        c for c in _client(Upstream(shape)).chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    ]
    stream = spendgate.instrument(_client(upstream)).chat.completions.create(
        model=GPT, messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    assert _text(chunks) == _text(plain) == "hi"
    assert len(chunks) == len(plain) - 1 and all(c.usage is None for c in chunks)  # usage withheld
    assert spendgate.cost_of(stream) == COST
    response = stream.response
    # the upstream's own response when its body was neither read nor encoded
    assert (response is upstream.sent[0]) is (shape == "raw")
    assert "stream_options" not in orjson.loads(response.request.content)  # the caller's request
    assert "content-length" not in response.headers and "content-encoding" not in response.headers
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("spendgate-")
    assert spendgate.cost_of(SimpleNamespace(_request_id=request_id)) == COST  # remembered by it
    assert [b.closed for b in upstream.bodies] == ([] if shape == "read" else [1])


@pytest.mark.parametrize("shape", ["raw", "gzip"])
def test_a_stream_closed_early_is_cancelled_and_its_body_closed_once(shape: str) -> None:
    upstream = Upstream(shape)
    seen: list[dict[str, Any]] = []
    spendgate.success_callback = [lambda kwargs, *_: seen.append(kwargs)]
    stream = spendgate.instrument(_client(upstream)).chat.completions.create(
        model=GPT, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    stream.close()
    [kwargs] = seen
    assert kwargs["standard_logging_object"]["spendgate_outcome"] == "cancelled"
    assert upstream.bodies[0].closed == 1


@pytest.mark.parametrize("shape", ["raw", "gzip", "read"])
async def test_an_async_stream_reads_the_same_whatever_the_upstreams_body(shape: str) -> None:
    upstream = Upstream(shape)
    http_client = HTTP.AsyncClient(transport=HTTP.MockTransport(upstream))
    plain = openai.AsyncOpenAI(base_url="http://upstream.test/v1", api_key="sk", http_client=http_client)
    async with spendgate.instrument(plain) as client:
        stream = await client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
    assert _text(chunks) == "hi" and all(c.usage is None for c in chunks)
    assert spendgate.cost_of(stream) == COST
    assert (stream.response is upstream.sent[0]) is (shape == "raw")
    assert [b.closed for b in upstream.bodies] == ([] if shape == "read" else [1])


@pytest.mark.parametrize(
    ("headers", "request_id"),
    [
        ([("x-request-id", "up-1")], "up-1"),
        ([("request-id", "up-2")], None),  # an OpenAI client reads x-request-id: one is added
        ([("x-request-id", "a"), ("X-Request-Id", "b")], "a, b"),  # repeated: joined as httpx joins it
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_the_request_id_is_the_upstreams_as_httpx_reads_it(
    headers: list[tuple[str, str]], request_id: str | None, streamed: bool
) -> None:
    upstream = Upstream("raw", headers)
    client = spendgate.instrument(_client(upstream))
    if streamed:
        stream = client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
        list(stream)
        got: str | None = stream.response.headers["x-request-id"]
        cost = spendgate.cost_of(SimpleNamespace(_request_id=got))
    else:
        raw = client.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
        got, cost = raw.request_id, spendgate.cost_of(raw.parse())
    assert got is not None
    if request_id is None:
        assert got.startswith("spendgate-")
    else:
        assert got == request_id
    assert cost == COST

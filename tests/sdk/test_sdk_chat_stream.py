"""The SDK's deferred chat stream translator gives exactly what the gateway's relay gives.

:class:`~spendgate.sdk.chat_stream.DeferredChatStream` hands chunks on without accounting
them, prices the usage chunk with a fresh relay and feeds the gateway's relay only when its
state is read. Every stream here goes through both, split at every byte boundary tried, and
the bytes handed on, the usage, the text, the service tier, the price and ``finished`` must
be equal, for streams that keep to its short path and for every case that leaves it.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage
from spendgate.providers.base import Pricer, StreamTranslator
from spendgate.providers.openai_compat import ChatStreamRelay
from spendgate.sdk.chat_stream import DeferredChatStream
from spendgate.sdk.metering import PricedModel

MODEL = PricedModel("gpt-4o", "openai")
AT = datetime(2026, 6, 1, tzinfo=UTC)
USAGE = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}


def _pricer(usage: Usage, *, served_tier: str | None = None) -> CostBreakdown:
    return MODEL.price(usage, AT, served_tier=served_tier)


def _event(payload: Any, raw: bytes | None = None) -> bytes:
    return b"data: " + (raw if raw is not None else orjson.dumps(payload)) + b"\n\n"


def _chunk(content: str | None = "x", finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [choice], **extra}


def _usage_chunk(**extra: Any) -> dict[str, Any]:
    base = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": []}
    return {**base, "usage": USAGE, **extra}


DONE = b"data: [DONE]\n\n"
CITATION = {"type": "url_citation"}
USAGE_JSON = orjson.dumps(USAGE)
TIER = {"service_tier": "default", "usage": None}

STREAMS: dict[str, bytes] = {
    "openai": b"".join(
        [
            *(_event(_chunk(w, **TIER)) for w in ("the ", "fox ", "ran")),
            _event(_chunk(None, "stop", **TIER)),
            _event(_usage_chunk(service_tier="default")),
            DONE,
        ]
    ),
    "no tier anywhere (vLLM)": b"".join(
        [_event(_chunk("a")), _event(_chunk("b", "stop")), _event(_usage_chunk()), DONE]
    ),
    "tier before, none on the usage chunk": b"".join(
        [_event(_chunk("a", service_tier="flex")), _event(_chunk(None, "stop")), _event(_usage_chunk()), DONE]
    ),
    "priority tier on every chunk": b"".join(
        [_event(_chunk("a", service_tier="priority")), _event(_usage_chunk(service_tier="priority")), DONE]
    ),
    "url citation": b"".join(
        [
            _event(_chunk("a", annotations=None)),
            _event({**_chunk("b"), "choices": [{"index": 0, "delta": {"annotations": [CITATION]}}]}),
            _event(_chunk(None, "stop")),
            _event(_usage_chunk()),
            DONE,
        ]
    ),
    "unicode escapes": b"".join(
        [
            _event(None, b'{"choices":[{"index":0,"delta":{"content":"\\u00e9t\\u00e9"}}],"model":"gpt-4o"}'),
            _event(_usage_chunk()),
            DONE,
        ]
    ),
    "a key behind an escape": _event(_chunk("a"))
    + _event(
        None, b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"\\u0075sage":' + USAGE_JSON + b"}"
    )
    + DONE,
    "usage on every chunk (continuous usage stats)": b"".join(
        [
            _event(_chunk("a", usage=USAGE)),
            _event(_chunk("b", "stop", usage=USAGE)),
            _event(_usage_chunk()),
            DONE,
        ]
    ),
    "usage with choices": b"".join([_event(_chunk("a")), _event(_chunk("b", "stop", usage=USAGE)), DONE]),
    "groq usage": b"".join(
        [_event(_chunk("a")), _event(_chunk(None, "stop", x_groq={"usage": USAGE})), DONE]
    ),
    "empty usage object": b"".join([_event(_chunk("a", usage={})), _event(_usage_chunk()), DONE]),
    "a chunk after the usage": b"".join(
        [_event(_chunk("a")), _event(_usage_chunk()), _event(_chunk("late", "stop")), DONE]
    ),
    "cut before usage": b"".join([_event(_chunk("a")), _event(_chunk("b"))]),
    "cut mid-event": _event(_chunk("a")) + b'data: {"choices":[{"index":0,"delta":{"content":"b',
    "not json, comments, no data": b": keep-alive\n\n"
    + _event(None, b"not json")
    + b"event: ping\n\n"
    + _event(_chunk("a", "stop"))
    + _event(_usage_chunk())
    + DONE,
    "malformed usage": b"".join([_event(_chunk("a", "stop")), _event(_usage_chunk(usage="lots")), DONE]),
    "spaces around null": _event(None, b'{"choices":[{"index":0,"delta":{"content":"a"}}],"usage" : null}')
    + _event(_usage_chunk())
    + DONE,
    "crlf": (_event(_chunk("a")) + _event(_usage_chunk()) + DONE).replace(b"\n", b"\r\n"),
}


def _run(translator: StreamTranslator, body: bytes, cut: int) -> dict[str, Any]:
    parts = [body[:cut], body[cut:]] if cut else [body[i : i + 7] for i in range(0, len(body), 7)]
    out = b"".join(translator.feed(part) for part in parts) + translator.close()
    usage = translator.usage()  # read in the order MeteredCall.finish_stream reads them
    breakdown = translator.breakdown
    return {
        "out": out,
        "usage": usage,
        "finished": translator.finished,
        "breakdown": None if breakdown is None else breakdown.to_dict(),
        "service_tier": translator.service_tier,
        "text": translator.text,
    }


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("name", list(STREAMS))
def test_the_deferred_translator_gives_what_the_gateways_relay_gives(name: str, include_usage: bool) -> None:
    body = STREAMS[name]

    def make(pricer: Pricer) -> StreamTranslator:
        return ChatStreamRelay(pricer, include_usage=include_usage)

    for cut in (0, len(body) // 3, len(body) // 2, len(body)):
        deferred = _run(DeferredChatStream(make, _pricer), body, cut)
        assert deferred == _run(make(_pricer), body, cut), (name, cut)


def test_an_openai_stream_keeps_to_the_short_path() -> None:
    translator = DeferredChatStream(partial(ChatStreamRelay, include_usage=False), _pricer)
    out = translator.feed(STREAMS["openai"])
    assert b'"prompt_tokens"' not in out  # the usage chunk is withheld
    assert translator.usage() is not None and translator.breakdown is not None
    assert not translator._in_order  # nothing was fed to the gateway's relay yet ...
    assert translator.text == "the fox ran"  # ... until its text was read
    assert translator._in_order


_PIECES = [
    _event(_chunk("a", **TIER)),
    _event(_chunk("b")),
    _event(_chunk("c", service_tier="flex")),
    _event(None, b'{"choices":[{"index":0,"delta":{"content":"d"}}],"usage" : null}'),
    _event(None, b'{"choices":[{"index":0,"delta":{"content":"\\\\ \\u00e9"}}],"usage":null}'),
    _event(None, b'{"choices":[{"index":0,"delta":{"content":"a \\\\ b"}}],"usage":null}'),
    _event({**_chunk("e"), "choices": [{"index": 0, "delta": {"annotations": [CITATION]}}]}),
    _event(_chunk("[DONE] is text here")),
    _event(_chunk(None, "stop", **TIER)),
    _event(_usage_chunk(service_tier="default")),
    _event(_usage_chunk()),
    _event(_chunk("f", usage=USAGE)),
    b": keep-alive\n\n",
    b"\n\n",
    DONE,
]


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(_PIECES) - 1), max_size=12),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
    crlf=st.booleans(),
    include_usage=st.booleans(),
)
def test_any_stream_split_anywhere_gives_what_the_gateways_relay_gives(
    picks: list[int], cuts: list[int], crlf: bool, include_usage: bool
) -> None:
    """Events before the first one that needs a look of their own are kept in one step:
    whatever the events and wherever the reads split them, the result is the relay's."""
    body = b"".join(_PIECES[i] for i in picks)
    if crlf:
        body = body.replace(b"\n", b"\r\n")
    bounds = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    parts = [body[a:b] for a, b in itertools.pairwise(bounds)]

    def make(pricer: Pricer) -> StreamTranslator:
        return ChatStreamRelay(pricer, include_usage=include_usage)

    def run(translator: StreamTranslator) -> dict[str, Any]:
        out = b"".join(translator.feed(part) for part in parts) + translator.close()
        usage = translator.usage()
        breakdown = translator.breakdown
        return {
            "out": out,
            "usage": usage,
            "finished": translator.finished,
            "breakdown": None if breakdown is None else breakdown.to_dict(),
            "service_tier": translator.service_tier,
            "text": translator.text,
        }

    assert run(DeferredChatStream(make, _pricer)) == run(make(_pricer))


def test_text_chunks_read_together_are_kept_in_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    looked: list[bytes] = []
    one_by_one = DeferredChatStream._event

    def event(self: DeferredChatStream, data: bytes) -> bytes:
        looked.append(data)
        return one_by_one(self, data)

    monkeypatch.setattr(DeferredChatStream, "_event", event)
    translator = DeferredChatStream(partial(ChatStreamRelay, include_usage=False), _pricer)
    body = STREAMS["openai"]
    out = translator.feed(body)
    assert looked == [_event(_usage_chunk(service_tier="default")), DONE]  # not the 4 text chunks
    assert out == body.replace(_event(_usage_chunk(service_tier="default")), b"")
    assert len(translator._kept) == 5 and translator._tier_said
    assert translator.usage() is not None and translator.finished

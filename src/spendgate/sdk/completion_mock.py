"""``mock_response=``: an answer built in this process, sent through the metered path.

LiteLLM's ``completion(..., mock_response="text")`` returns a response without calling a
provider, with usage counted from the text and a real price. spendgate does the same
without a second code path: the call goes through an instrumented client like any other,
whose innermost transport is an in-memory ``MockTransport`` answering with the handler
here. So the global budget, the callbacks, ``cost_of()`` and the ledger see a mocked call
exactly as they see a real one, and no socket is opened.

Usage is counted as the gateway estimates it (:func:`~spendgate.providers.base.estimate_prompt_tokens`
for the prompt, :func:`~spendgate.providers.base.estimate_text_tokens` for the text, about
four characters a token), and written into the answer, so the answer is priced from its
usage like a provider's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from spendgate.providers.base import estimate_prompt_tokens, estimate_text_tokens
from spendgate.sdk.httpx_compat import MODULES

__all__ = ["EMBEDDING_DIMENSIONS", "MOCK_API_BASE", "mock_handler"]

MOCK_API_BASE = "http://mock-response.spendgate.invalid/v1"
"""The base URL of a mocked call (never resolved: the transport answers in memory)."""

EMBEDDING_DIMENSIONS = 8
"""The length of a mocked embedding vector when ``mock_response`` gives none."""


def _chat(body: dict[str, Any], text: str) -> dict[str, Any]:
    prompt = estimate_prompt_tokens(body, "chat")
    completion = estimate_text_tokens(text)
    return {
        "id": f"chatcmpl-mock-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _pieces(text: str) -> list[str]:
    """The text as stream deltas: one word (with its following space) each."""
    out: list[str] = []
    start = 0
    for i, char in enumerate(text):
        if char == " ":
            out.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return out


def _chat_stream(body: dict[str, Any], text: str) -> bytes:
    whole = _chat(body, text)
    base = {
        "id": whole["id"],
        "object": "chat.completion.chunk",
        "created": whole["created"],
        "model": whole["model"],
    }

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [
        event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]) for piece in _pieces(text)
    ]
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        events.append(event([], usage=whole["usage"]))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _embeddings(body: dict[str, Any], vector: Sequence[float] | None) -> dict[str, Any]:
    given = body.get("input")
    inputs = given if isinstance(given, list) and given and not isinstance(given[0], int) else [given]
    values = list(vector) if vector is not None else [0.0] * EMBEDDING_DIMENSIONS
    prompt = estimate_prompt_tokens(body, "embeddings")
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": values} for i in range(len(inputs))],
        "model": body.get("model", ""),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def mock_handler(mock_response: Any) -> Callable[[Any], Any]:
    """A ``MockTransport`` handler answering chat (complete or streamed) with the text
    ``mock_response``, and embeddings with ``mock_response`` as the vector when it is a
    list of numbers (else zeros). Works for ``httpx`` and ``httpx2`` requests."""

    def handle(request: Any) -> Any:
        http = next(m for m in MODULES if isinstance(request, m.Request))
        body = orjson.loads(request.content)
        path = request.url.path.rstrip("/")
        if path.endswith("/embeddings"):
            vector = mock_response if isinstance(mock_response, list) else None
            return http.Response(200, json=_embeddings(body, vector))
        if not path.endswith("/chat/completions"):
            return http.Response(404, json={"error": {"message": f"mock_response: no mock for {path}"}})
        text = mock_response if isinstance(mock_response, str) else "This is a mock response."
        if body.get("stream") is True:
            return http.Response(
                200, content=_chat_stream(body, text), headers={"content-type": "text/event-stream"}
            )
        return http.Response(200, json=_chat(body, text))

    return handle

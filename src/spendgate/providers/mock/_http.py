"""Small HTTP vocabulary shared by the mock provider's handlers: replies, errors, ids, SSE."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "MockHTTPError",
    "Reply",
    "anthropic_sse",
    "json_reply",
    "new_id",
    "now",
    "openai_sse",
]

# A per-process prefix keeps ids unique across workers without the cost of uuid4.
_PREFIX = secrets.token_hex(4)
_COUNTER = itertools.count(1)


def new_id(prefix: str) -> str:
    """A unique id such as ``chatcmpl-1a2b3c4d000001f4``."""
    return f"{prefix}{_PREFIX}{next(_COUNTER):08x}"


def now() -> int:
    return int(time.time())


@dataclass(slots=True)
class Reply:
    """What a handler returns: a whole body, or a list of SSE events to stream.

    ``input_tokens`` / ``output_tokens`` are what the reply reports, added to the stats
    once it has been sent in full.
    """

    body: bytes = b""
    status: int = 200
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    events: list[bytes] | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def json_reply(payload: Any, status: int = 200, *, input_tokens: int = 0, output_tokens: int = 0) -> Reply:
    return Reply(orjson.dumps(payload), status=status, input_tokens=input_tokens, output_tokens=output_tokens)


class MockHTTPError(Exception):
    """An error response; the app renders it in the OpenAI or Anthropic shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after


def openai_sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def anthropic_sse(payload: dict[str, Any]) -> bytes:
    """An event with an ``event:`` line (Anthropic and the Responses API use named events)."""
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

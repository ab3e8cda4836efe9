"""The answer of a non-streamed call.

A starlette ``Response`` checks and re-encodes its headers as it is built; the gateway's
answers are made of known parts, so :class:`BodyReply` encodes them once, straight into
``raw_headers``, and is sent by ``Response.__call__``. (Streams are
:class:`~spendgate.gateway.streaming.StreamRelay`.)
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

__all__ = ["BodyReply", "header_map"]


class BodyReply(Response):
    """A complete body with its status and headers."""

    def __init__(  # no super().__init__(): every attribute Response.__call__ reads is set here
        self, body: bytes, status_code: int, headers: Mapping[str, str], content_type: str | None
    ) -> None:
        self.body = body
        self.status_code = status_code
        raw = [(b"content-length", str(len(body)).encode())]
        if content_type:
            raw.append((b"content-type", content_type.encode("latin-1")))
        raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.raw_headers = raw
        self.background = None


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """An ASGI scope's headers (lower-case names) as a dict; the first of repeated names wins,
    as with starlette's ``Headers.get``."""
    out: dict[str, str] = {}
    for name, value in reversed(raw):
        out[name.decode("latin-1")] = value.decode("latin-1")
    return out

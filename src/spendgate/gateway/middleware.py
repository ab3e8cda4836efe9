"""The gateway's one middleware (pure ASGI): request id, timing headers, errors to JSON.

For every HTTP request it assigns the request id, starts the clock, and guarantees on
every response, errors included: ``x-spendgate-request-id``; ``x-spendgate-overhead-ms``
(time in the gateway, upstream time excluded) and ``x-spendgate-response-cost`` (``0``
when nothing was billed) unless the pipeline set them; streamed answers carry their
cost in the final usage chunk instead. An exception that escapes the app becomes the
OpenAI-shaped error of :func:`~spendgate.gateway.errors.render_error`, never a traceback.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendgate.gateway.errors import render_error

__all__ = ["GatewayMiddleware", "new_request_id"]

log = logging.getLogger("spendgate.gateway")

_PREFIX = f"req_{os.urandom(5).hex()}"
_counter = itertools.count(1)


def new_request_id() -> str:
    """A process-unique, sortable-enough request id: ``req_<random per process>_<n>``.

    Unique across processes and restarts by its random prefix; cheaper than a UUID.
    """
    return f"{_PREFIX}{next(_counter):012x}"


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, budget_exceeded_status: int = 429) -> None:
        self.app = app
        self.budget_exceeded_status = budget_exceeded_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        state["started_at"] = datetime.now(UTC)
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = list(message.get("headers", ()))
                names = {name for name, _ in headers}
                headers.append((b"x-spendgate-request-id", request_id.encode()))
                if b"x-spendgate-overhead-ms" not in names:
                    spent = time.perf_counter() - started - state.get("upstream_seconds", 0.0)
                    headers.append((b"x-spendgate-overhead-ms", f"{max(spent, 0.0) * 1000:.3f}".encode()))
                streamed = any(
                    n == b"content-type" and v.startswith(b"text/event-stream") for n, v in headers
                )
                if b"x-spendgate-response-cost" not in names and not streamed:
                    headers.append((b"x-spendgate-response-cost", b"0"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if response_started:
                log.error("error after the response started (request %s)", request_id, exc_info=exc)
                return
            status, body, headers = render_error(exc, budget_status=self.budget_exceeded_status)
            raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            await send_with_headers({"type": "http.response.start", "status": status, "headers": raw})
            await send_with_headers({"type": "http.response.body", "body": body})

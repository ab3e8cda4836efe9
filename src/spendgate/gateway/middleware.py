"""The gateway's one middleware (pure ASGI): request id, timing headers, errors to JSON.

For every HTTP request it assigns the request id, starts the clock, and guarantees on
every response, errors included: ``x-spendgate-request-id``; ``x-spendgate-overhead-ms``
(time in the gateway, upstream time excluded) and ``x-spendgate-response-cost`` (``0``
when nothing was billed) unless the pipeline set them; streamed answers carry their
cost in the final usage chunk instead. An exception that escapes the app becomes the
OpenAI-shaped error of :func:`~spendgate.http.errors.render_error`, never a traceback.

When a graceful stop runs out of time (``spendgate serve --graceful-timeout``), uvicorn
cancels the requests still running; uvicorn alone would answer those with a plain-text
500. A request cancelled before its answer started gets a JSON 503
(``service_unavailable`` / ``shutting_down``) instead; a streamed answer is ended with an
error event by :class:`~spendgate.gateway.streaming.StreamRelay`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendgate.http.errors import error_body, render_error
from spendgate.http.headers import (
    LITELLM_RESPONSE_COST,
    OVERHEAD_MS,
    REQUEST_ID,
    RESPONSE_COST,
    RETRY_AFTER,
    overhead_text,
)

__all__ = ["GatewayMiddleware", "InFlight", "new_request_id"]

log = logging.getLogger("spendgate.gateway")

_PREFIX = f"req_{os.urandom(5).hex()}"
_counter = itertools.count(1)
_REQUEST_ID, _OVERHEAD_MS, _RESPONSE_COST = (h.encode() for h in (REQUEST_ID, OVERHEAD_MS, RESPONSE_COST))
_LITELLM_COST = LITELLM_RESPONSE_COST.encode()


def _litellm_cost(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """LiteLLM's ``x-litellm-response-cost`` beside spendgate's cost, same exact USD; none
    for an unpriced call (never a made-up $0) or a stream (its cost is not known yet)."""
    for name, value in headers:
        if name == _RESPONSE_COST:
            return [] if value == b"unpriced" else [(_LITELLM_COST, value)]
    return []


def new_request_id() -> str:
    """A process-unique, sortable-enough request id: ``req_<random per process>_<n>``.

    Unique across processes and restarts by its random prefix; cheaper than a UUID.
    """
    return f"{_PREFIX}{next(_counter):012x}"


class InFlight:
    """How many requests are being served. The lifespan waits for them to end before it
    closes the spend recorder: requests cancelled by a graceful stop that ran out of time
    still settle and record (a stream cut short is billed)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until no request is in flight; False if some are."""
        if self.count == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True


class GatewayMiddleware:
    def __init__(
        self, app: ASGIApp, *, budget_exceeded_status: int = 429, in_flight: InFlight | None = None
    ) -> None:
        self.app = app
        self.budget_exceeded_status = budget_exceeded_status
        self.in_flight = in_flight or InFlight()

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
        response_started = response_ended = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started, response_ended
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_ended = True
            if message["type"] == "http.response.start":
                response_started = True
                headers = list(message.get("headers", ()))
                names = {name for name, _ in headers}
                headers.append((_REQUEST_ID, request_id.encode()))
                if _OVERHEAD_MS not in names:
                    spent = time.perf_counter() - started - state.get("upstream_seconds", 0.0)
                    headers.append((_OVERHEAD_MS, overhead_text(max(spent, 0.0)).encode()))
                streamed = any(
                    n == b"content-type" and v.startswith(b"text/event-stream") for n, v in headers
                )
                if _RESPONSE_COST not in names and not streamed:
                    headers.append((_RESPONSE_COST, b"0"))
                headers.extend(_litellm_cost(headers))
                message = {**message, "headers": headers}
            await send(message)

        self.in_flight.count += 1
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if response_started:
                log.error("error after the response started (request %s)", request_id, exc_info=exc)
                return
            status, body, headers = render_error(exc, budget_status=self.budget_exceeded_status)
            await _answer(send_with_headers, status, body, headers)
        except asyncio.CancelledError:
            # Only the server cancels a request's task: its graceful stop ran out of time.
            if response_started and not response_ended:
                raise  # a body cut short: nothing better than closing the connection
            if not response_started:
                log.warning("request %s cancelled by the server's stop: answered 503", request_id)
                await _answer(send_with_headers, 503, _SHUTTING_DOWN, {RETRY_AFTER: "1"})
            # The answer is complete: the cancellation has done its work (the task ends here).
        finally:
            self.in_flight.leave()


_SHUTTING_DOWN = error_body(
    "the gateway is shutting down and stopped this request before it was answered; retry it",
    "service_unavailable",
    None,
    "shutting_down",
)


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

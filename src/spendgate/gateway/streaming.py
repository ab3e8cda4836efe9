"""Server-sent-event passthrough: back-pressure, client disconnects, billing at the end.

:class:`StreamRelay` is the ASGI response of a streamed call. It reads the upstream body
chunk by chunk, rewrites it through the call's
:class:`~spendgate.providers.base.StreamTranslator` and sends it on; ``send`` waits while
the client's socket is full, so the upstream is read no faster than the client reads
(back-pressure). It races the copy against the client's ``http.disconnect``: when the
client goes away it stops reading, closes the upstream connection and still bills.

However the stream ends, ``finish`` is awaited exactly once with a :class:`StreamOutcome`:
the pipeline meters, prices, settles and records from it.

The relay owns the upstream response: it only iterates the body (which releases nothing)
and closes the response exactly once, when the stream ends however it ends; the client
hands the connection back to its pool only if the body was read to its end (see
:mod:`spendgate.providers.http`). When the server's graceful stop runs out of time and
cancels the request, the stream is ended with an error event in the call's dialect (not
cut mid-chunk) and billed as partial.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from spendgate.errors import UpstreamError
from spendgate.providers.base import StreamTranslator
from spendgate.providers.http import UpstreamResponse
from spendgate.providers.transport import upstream_errors

__all__ = ["StreamOutcome", "StreamRelay"]

log = logging.getLogger("spendgate.gateway")


@dataclass(slots=True)
class StreamOutcome:
    client_disconnected: bool = False
    upstream_error: UpstreamError | None = None
    finished: bool = False
    """The upstream ended the stream properly."""
    bytes_sent: int = 0
    processing_seconds: float = 0.0
    """Time spent rewriting chunks (gateway overhead during the stream)."""


class StreamRelay(Response):
    """The streamed answer of one call (an ASGI response)."""

    def __init__(
        self,
        upstream: UpstreamResponse,
        translator: StreamTranslator,
        headers: dict[str, str],
        finish: Callable[[StreamOutcome], Awaitable[None]],
        where: str,
    ) -> None:
        # Not Response.__init__: it would declare a content-length for the empty body.
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        self.upstream = upstream
        self.translator = translator
        self.finish = finish
        self.where = where
        self.outcome = StreamOutcome()
        self._started = False
        self._ended = False
        """The response's last body message was sent."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = self.outcome
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            self._started = True
            pump = asyncio.ensure_future(self._pump(send))
            watch = asyncio.ensure_future(_wait_for_disconnect(receive))
            try:
                await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, watch):
                    if not task.done():
                        task.cancel()
                for task in (pump, watch):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if watch.done() and not watch.cancelled() and not pump_completed(pump):
                outcome.client_disconnected = True
        except OSError:
            outcome.client_disconnected = True
        except asyncio.CancelledError:
            await self._end_cancelled(send)
            raise
        finally:
            await self.upstream.aclose()  # the one release of this upstream connection
            outcome.finished = self.translator.finished
            await self.finish(outcome)

    async def _end_cancelled(self, send: Send) -> None:
        """The request was cancelled (the server's graceful stop ran out of time): end the
        stream with an error event rather than cut it, and bill it as partial."""
        outcome = self.outcome
        if self._ended or outcome.client_disconnected:
            return  # the stream had ended anyway
        if outcome.upstream_error is None:
            outcome.upstream_error = UpstreamError(f"{self.where}: the gateway stopped mid-stream")
        if not self._started:
            return
        tail = self.translator.error_event("the gateway is shutting down; the stream was cut short")
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            self._ended = True
            outcome.bytes_sent += len(tail)

    async def _pump(self, send: Send) -> None:
        outcome, translator = self.outcome, self.translator
        tail = b""
        try:
            with upstream_errors(self.where):
                async for chunk in self.upstream.aiter_bytes():
                    started = time.perf_counter()
                    out = translator.feed(chunk)
                    outcome.processing_seconds += time.perf_counter() - started
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                        outcome.bytes_sent += len(out)
            tail = translator.close()
        except UpstreamError as exc:
            outcome.upstream_error = exc
            log.warning("upstream stream failed after %d bytes: %s", outcome.bytes_sent, exc)
            tail = translator.close() + translator.error_event(f"upstream stream failed: {exc}")
        except OSError:
            outcome.client_disconnected = True
            return
        except Exception as exc:  # a bug while rewriting: end the stream, still bill
            log.error("stream relay failed", exc_info=exc)
            outcome.upstream_error = UpstreamError(f"{self.where}: stream relay failed")
            tail = translator.error_event("the gateway failed while relaying the stream")
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        self._ended = True
        outcome.bytes_sent += len(tail)


def pump_completed(pump: asyncio.Future[None]) -> bool:
    return pump.done() and not pump.cancelled() and pump.exception() is None


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return

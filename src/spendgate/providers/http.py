"""The upstream HTTP client, chosen by measurement.

The gateway sends :class:`UpstreamRequest` values through an :class:`UpstreamClient`
(``general_settings.upstream_http_client``):

* :class:`FastClient` (``fast``, the default): HTTP/1.1 with keep-alive pooling per origin on
  asyncio protocols and the ``httptools`` (llhttp) parser uvicorn also uses.
* :class:`AiohttpClient` (``aiohttp``): one shared ``aiohttp.ClientSession`` (pooled
  ``TCPConnector``, no cookie jar, no redirects, no decompression).
* :class:`HttpxClient` (``httpx``): an ``httpx.AsyncClient``, for an injected transport
  (tests use ``httpx.MockTransport``), proxies from the environment, or HTTP/2.

Why ``fast`` stays the default: measured with ``bench/gateway.py --duration 10 --connections 1,8
--upstream-client fast,aiohttp,httpx`` (2026-11-22, 14:54–15:01 UTC, three runs, the last with
the order reversed; one uvicorn worker, recording on, shared 2-core machine at load 2–5), the
gateway's CPU per request with aiohttp 3.14 was 24–37 % above ``fast`` at one connection
(1.47–1.55 vs 1.07–1.21 ms) and 22–24 % at eight (1.17–1.27 vs 0.96–1.03 ms); httpx cost
3.1–4.3 ms. Client side alone, a small call costs ~310 µs of CPU in aiohttp against ~170 µs
(a ``ClientRequest``/``ClientResponse`` pair, a writer task, a ``sock_read`` timer re-armed
per chunk). That is beyond the ~15 % that would justify dropping the hand-written client;
see ``docs/benchmarks.md`` ("Gateway").

:class:`FastClient` speaks HTTP/1.1 over TCP or TLS; no proxies, no HTTP/2. Its errors are httpx's
(``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``RemoteProtocolError`` …);
:class:`AiohttpClient`'s are aiohttp's; :func:`~spendgate.providers.transport.upstream_errors`
maps both. Streamed bodies are read with back-pressure: ``FastClient`` stops reading the socket
while 256 KiB wait unconsumed, aiohttp's ``StreamReader`` above 128 KiB. ``FastClient`` sends
a request that failed on a reused keep-alive connection before any byte of an answer (the
server closed it while idle) once more on a new connection; aiohttp retries only idempotent
methods that way, so for a POST such a race surfaces as a retryable
:class:`~spendgate.errors.UpstreamError` (the router's retries), made rare by a keep-alive
expiry (4 s) shorter than common servers' (uvicorn and vLLM: 5 s).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httptools
import httpx

__all__ = [
    "AiohttpClient",
    "FastClient",
    "HttpxClient",
    "UpstreamClient",
    "UpstreamRequest",
    "UpstreamResponse",
]

_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.error: BaseException | None = None
        self.wake: asyncio.Future[None] | None = None
        self.received = False
        self.paused = False
        self.until_close = False
        self.keep_alive = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_close and self.head.done() and not self.complete:
            self.complete = True  # a body delimited by the end of the connection
            self._notify()
        elif not self.complete:
            message = "server disconnected without sending a complete response"
            self._fail(httpx.RemoteProtocolError(message) if self.received else httpx.ReadError(message))

    # -- httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # only valid before the message ends
        names = {name.lower() for name, _ in self.headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._notify()

    def on_message_complete(self) -> None:
        self.complete = True
        self._notify()

    # -- helpers ----------------------------------------------------------------------------
    def _notify(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved: no "never retrieved" warning if unused
        self._notify()
        if self.transport is not None:
            self.transport.close()

    async def read_body(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered < _LOW_WATER and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
                continue
            if self.complete:
                return
            if self.error is not None:
                raise self.error
            self.wake = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.wake, timeout)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response body") from None
            finally:
                self.wake = None


@dataclass(slots=True)
class UpstreamRequest:
    """One upstream HTTP request, fully built (cheaper than an ``httpx.Request``)."""

    method: str
    url: str
    """Absolute URL, query string included."""
    headers: dict[str, str]
    content: bytes = b""
    timeout: float | None = 600.0
    """Seconds to wait for the answer's headers and between its body chunks."""
    connect_timeout: float | None = 10.0


class UpstreamResponse(Protocol):
    status_code: int
    headers: dict[str, str]
    """Lower-case names."""

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _FastResponse:
    __slots__ = ("_client", "_conn", "_done", "_timeout", "headers", "status_code")

    def __init__(self, client: FastClient, conn: _Connection, timeout: float | None) -> None:
        self._client = client
        self._conn = conn
        self._timeout = timeout
        self._done = False
        self.status_code = conn.status
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in conn.headers}

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._conn.read_body(self._timeout):
                yield chunk
            self._done = True
        finally:
            await self.aclose()

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        conn = self._conn
        if self._done and conn.complete and conn.error is None and conn.keep_alive:
            self._client._release(conn)
        elif not conn.closed:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()


class FastClient:
    """HTTP/1.1 keep-alive client on asyncio + httptools (see the module docstring)."""

    def __init__(self, *, keepalive_expiry: float = 4.0, max_idle_per_origin: int = 512) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._expiry = keepalive_expiry
        self._max_idle = max_idle_per_origin
        self._ssl: ssl.SSLContext | None = None
        self._origins: dict[str, tuple[tuple[str, str, int], str]] = {}

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        origin, target = self._split(request.url)
        payload = self._serialize(request, origin, target)
        conn = self._take(origin)
        reused = conn is not None
        while True:
            if conn is None:
                conn = await self._connect(origin, request.connect_timeout)
            try:
                return await self._exchange(conn, payload, request.timeout)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if not reused or conn.received:
                    raise
                conn, reused = None, False  # a stale keep-alive connection: once more, fresh

    def _split(self, url: str) -> tuple[tuple[str, str, int], str]:
        scheme, _, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        cached = self._origins.get(authority + scheme)
        if cached is None:
            parsed = httpx.URL(f"{scheme}://{authority}/")
            port = parsed.port or (443 if scheme == "https" else 80)
            host_header = authority
            cached = ((scheme, parsed.host, port), host_header)
            if len(self._origins) < 1024:
                self._origins[authority + scheme] = cached
        return cached[0], slash + path if slash else "/"

    async def _exchange(self, conn: _Connection, payload: bytes, timeout: float | None) -> UpstreamResponse:
        conn._reset()
        conn.used += 1
        assert conn.transport is not None
        conn.transport.write(payload)
        try:
            await asyncio.wait_for(conn.head, timeout)
        except TimeoutError:
            conn.closed = True
            conn.transport.close()
            raise httpx.ReadTimeout("timed out waiting for the response headers") from None
        return _FastResponse(self, conn, timeout)

    @staticmethod
    def _serialize(request: UpstreamRequest, origin: tuple[str, str, int], target: str) -> bytes:
        scheme, host, port = origin
        default = 443 if scheme == "https" else 80
        head = [
            f"{request.method} {target} HTTP/1.1",
            f"host: {host if port == default else f'{host}:{port}'}",
        ]
        body = request.content
        for name, value in request.headers.items():
            if name.lower() not in ("content-length", "host", "transfer-encoding"):
                head.append(f"{name}: {value}")
        if body or request.method in ("POST", "PUT", "PATCH"):
            head.append(f"content-length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._expiry:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    def _release(self, conn: _Connection) -> None:
        if conn.closed:
            return
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= self._max_idle:
            assert conn.transport is not None
            conn.transport.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            ctx = self._ssl
        elif scheme != "http":
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(origin), host, port, ssl=ctx, server_hostname=host if ctx else None
                ),
                timeout,
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        assert isinstance(protocol, _Connection)
        return protocol

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()

    def stats(self) -> dict[str, Any]:
        return {"idle": {f"{s}://{h}:{p}": len(c) for (s, h, p), c in self._idle.items()}}


class _HttpxResponse:
    __slots__ = ("_response", "headers", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def aread(self) -> bytes:
        return await self._response.aread()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    """The same interface on an ``httpx.AsyncClient`` (any transport: tests, proxies, HTTP/2)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        timeout = httpx.Timeout(request.timeout, connect=request.connect_timeout)
        built = self.client.build_request(
            request.method, request.url, headers=request.headers, content=request.content, timeout=timeout
        )
        return _HttpxResponse(await self.client.send(built, stream=True))

    async def aclose(self) -> None:
        await self.client.aclose()


class _AiohttpResponse:
    __slots__ = ("_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        finally:
            self._response.release()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        finally:
            self._response.release()

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; otherwise the connection is closed.
        self._response.release()


class AiohttpClient:
    """The interface on one shared ``aiohttp.ClientSession`` (see the module docstring).

    Create it inside a running event loop (the gateway's lifespan does).
    """

    def __init__(self, *, max_connections: int = 1000, keepalive_expiry: float = 4.0) -> None:
        connector = aiohttp.TCPConnector(
            limit=max_connections,  # beyond it a request waits for a free connection (connect timeout)
            limit_per_host=0,
            ttl_dns_cache=300,
            keepalive_timeout=keepalive_expiry,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"accept-encoding": "identity"},  # bodies are parsed and priced as sent
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one caller's cookies to another
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
        )
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _timeout(self, request: UpstreamRequest) -> aiohttp.ClientTimeout:
        key = (request.timeout, request.connect_timeout)
        timeout = self._timeouts.get(key)
        if timeout is None:
            # connect covers waiting for a pooled connection too; sock_read bounds the wait for
            # the headers and between body chunks, as UpstreamRequest.timeout says.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=request.connect_timeout, sock_read=request.timeout
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        response = await self.session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.content or None,
            timeout=self._timeout(request),
            allow_redirects=False,
        )
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self.session.close()

"""The upstream HTTP client: a well-kept library, and one owner for each connection's release.

The gateway sends :class:`UpstreamRequest` values through an :class:`UpstreamClient`, built
by :func:`make_upstream_client` from ``general_settings``:

* :class:`AiohttpClient` (``upstream_http_client: aiohttp``, the default): one shared
  ``aiohttp.ClientSession`` (pooled ``TCPConnector``, no cookie jar, no redirects, no
  decompression), HTTP/1.1 over TCP or TLS, proxies from the environment.
* :class:`HttpxClient` (``upstream_http_client: httpx``, or ``upstream_http2: true``, or an
  injected transport such as the tests' ``httpx.MockTransport``): an ``httpx.AsyncClient``,
  HTTP/2 where the upstream offers it (ALPN) when ``upstream_http2`` is on, proxies from the
  environment.

Why aiohttp and not a hand-written client: spendgate had one (``fast``, asyncio + httptools),
about 0.2 ms of CPU cheaper per call, and it returned a streamed answer's connection to the
pool twice (when the byte iterator ended and again when the relay closed the response), so
two requests then shared a socket: in 3,350 concurrent streamed calls 54 clients received
another request's answer and 127 hung; aiohttp served 8,308 with none. It also had no
proxies and no HTTP/2. An upstream client is not where a gateway saves microseconds; the
measured cost of the change is in ``docs/benchmarks.md`` ("Upstream client").

Who releases a connection (the rule :class:`~spendgate.gateway.streaming.StreamRelay` and
:mod:`~spendgate.gateway.pipeline` follow): whoever :meth:`~UpstreamClient.send` returned the
response to owns it. :meth:`UpstreamResponse.aread` reads the whole body and then hands the
connection back; :meth:`UpstreamResponse.aiter_bytes` never releases anything; the owner calls
:meth:`UpstreamResponse.aclose` when done, which is idempotent and returns the connection to
the pool only if the body was read to its end, otherwise closes it (a half-read answer must
never reach the next request).

Proxies: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (and lower-case) are read with
aiohttp's own rules, once per origin, instead of aiohttp's ``trust_env`` (which re-reads the
environment in a thread and consults ``~/.netrc`` on every request); httpx reads them itself
(``trust_env``). Errors stay the libraries' own; :func:`~spendgate.providers.transport.upstream_errors`
maps both. A POST that fails on a keep-alive connection the server closed while idle is not
resent by aiohttp (not idempotent): it surfaces as a retryable
:class:`~spendgate.errors.UpstreamError` (the router's retries), made rare by a keep-alive
expiry (4 s) shorter than common servers' (uvicorn and vLLM: 5 s).
"""

from __future__ import annotations

import io
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

__all__ = [
    "AiohttpClient",
    "HttpxClient",
    "UpstreamClient",
    "UpstreamRequest",
    "UpstreamResponse",
    "make_upstream_client",
]

_KEEPALIVE_EXPIRY = 4.0


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

    async def aread(self) -> bytes:
        """The whole body; then the connection goes back to the pool (closed on an error)."""
        ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk; releases nothing (the owner calls :meth:`aclose`)."""
        ...

    async def aclose(self) -> None:
        """Idempotent: back to the pool if the body was read to its end, else closed."""
        ...


class UpstreamClient(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


# -- aiohttp (the default) ----------------------------------------------------------------------


class _AiohttpResponse:
    __slots__ = ("_closed", "_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._closed = False
        self.status_code = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def aread(self) -> bytes:
        try:
            body = await self._response.read()
        finally:
            await self.aclose()  # read to the end: pooled; failed or cancelled: closed
        return body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        response = self._response
        if response.content.at_eof():
            response.release()
        else:
            response.close()


class AiohttpClient:
    """The interface on one shared ``aiohttp.ClientSession`` (see the module docstring).

    Create it inside a running event loop (the gateway's lifespan does).
    """

    def __init__(self, *, max_connections: int = 1000, keepalive_expiry: float = _KEEPALIVE_EXPIRY) -> None:
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
        self._use_env_proxies = bool(urllib.request.getproxies())
        self._proxies: dict[str, URL | None] = {}
        """Per origin (``scheme://host:port``): the proxy from the environment, or None."""

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

    def _proxy(self, url: str) -> URL | None:
        """The environment's proxy for ``url`` (aiohttp's rules, ``NO_PROXY`` honoured)."""
        if not self._use_env_proxies:
            return None
        parsed = URL(url)
        origin = f"{parsed.scheme}://{parsed.host}:{parsed.port}"
        if origin not in self._proxies:
            if len(self._proxies) >= 1024:
                self._proxies.clear()
            self._proxies[origin] = _env_proxy(parsed)
        return self._proxies[origin]

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        response = await self.session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=_aiohttp_body(request.content),
            timeout=self._timeout(request),
            allow_redirects=False,
            proxy=self._proxy(request.url),
        )
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self.session.close()


def _env_proxy(url: URL) -> URL | None:
    try:
        proxy, auth = get_env_proxy_for_url(url)
    except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
        return None
    if auth is not None:  # the proxy URL's user:password (or ~/.netrc's entry for the proxy)
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return proxy


# -- httpx (HTTP/2, injected transports) ----------------------------------------------------------


class _HttpxResponse:
    __slots__ = ("_response", "headers", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def aread(self) -> bytes:
        try:
            return await self._response.aread()
        finally:
            await self._response.aclose()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        # httpx closes the response itself once the body is read to its end: the same release
        # as the owner's aclose (pooled only then), and httpx's close is idempotent.
        return self._response.aiter_bytes()

    async def aclose(self) -> None:
        await self._response.aclose()  # httpcore pools it only if the body was read to its end


_LARGE_BODY = 1 << 20
"""aiohttp sends a bytes body of more than 1 MiB in one write and warns that it may block the
event loop; such a body (a batch file upload) goes as a file-like object it streams in chunks."""


def _aiohttp_body(content: bytes | None) -> bytes | io.BytesIO | None:
    if not content:
        return None
    return io.BytesIO(content) if len(content) > _LARGE_BODY else content


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


def make_upstream_client(
    kind: Literal["aiohttp", "httpx"] = "aiohttp",
    *,
    http2: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 600.0,
) -> UpstreamClient:
    """The gateway's upstream client: aiohttp unless httpx is asked for, HTTP/2 is on, or a
    transport is injected (call inside the running event loop)."""
    if kind == "aiohttp" and not http2 and transport is None:
        return AiohttpClient()
    return HttpxClient(
        httpx.AsyncClient(
            transport=transport,
            http2=http2,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY (only without an injected transport)
            headers={"accept-encoding": "identity"},
            limits=httpx.Limits(
                max_connections=2000, max_keepalive_connections=500, keepalive_expiry=_KEEPALIVE_EXPIRY
            ),
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
        )
    )

"""The one place HTTP client exceptions become spendgate's upstream errors.

Like httpx's own ``map_httpcore_exceptions``: adapters and the gateway wrap every
upstream exchange in :func:`upstream_errors`, so the rest of spendgate only ever sees
:class:`~spendgate.errors.UpstreamTimeout`, :class:`~spendgate.errors.UpstreamConnectError`
or :class:`~spendgate.errors.UpstreamError`, each chained ``from`` the client's exception,
whichever upstream client (:mod:`spendgate.providers.http`) raised it: httpx or aiohttp.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
import httpx

from spendgate.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout

__all__ = ["upstream_errors"]

_TIMEOUTS = (
    httpx.TimeoutException,
    TimeoutError,  # asyncio's; aiohttp's ServerTimeoutError (ConnectionTimeoutError, SocketTimeoutError)
)
_CONNECT = (
    httpx.ConnectError,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    aiohttp.ClientConnectorError,  # refused, DNS, TLS (certificate, handshake), proxy unreachable
    aiohttp.ClientHttpProxyError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)
_TRANSPORT = (
    # httpx: ReadError, WriteError, RemoteProtocolError (connection closed mid-answer) …
    httpx.TransportError,
    # aiohttp: ServerDisconnectedError, ClientOSError (reset), ClientPayloadError (body cut
    # short, bad chunking), ClientResponseError (an unparsable answer) …
    aiohttp.ClientError,
)


@contextlib.contextmanager
def upstream_errors(where: str) -> Iterator[None]:
    """Translate HTTP client exceptions raised inside the block; ``where`` names the upstream."""
    try:
        yield
    except _TIMEOUTS as exc:
        raise UpstreamTimeout(f"{where}: timed out ({type(exc).__name__})") from exc
    except _CONNECT as exc:
        raise UpstreamConnectError(f"{where}: cannot connect ({exc or type(exc).__name__})") from exc
    except _TRANSPORT as exc:
        raise UpstreamError(f"{where}: connection failed ({exc or type(exc).__name__})") from exc

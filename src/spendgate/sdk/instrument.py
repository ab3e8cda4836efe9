"""``spendgate.instrument(client)``: an official ``openai`` / ``anthropic`` client, metered.

Both SDKs take an ``http_client``; an instrumented client is a copy of the given one
(``client.with_options(http_client=...)``, the SDKs' own way to copy a client) whose HTTP
client sends through a :class:`~spendgate.sdk.transport.MeteredTransport` (or its async
twin). Nothing in the SDK is patched; the original client is left as it was.

Which transport the metered one wraps:

* the SDK's own default HTTP client: a new transport with the SDK's connection limits
  (the original client may be closed or garbage-collected without affecting the copy);
* an HTTP client the caller built (proxies, TLS, a mock transport): its transport, shared
  (borrowed: closing the instrumented client does not close it);
* mounts (per-URL transports, e.g. proxies from the environment) are metered too.

The ready classes :class:`spendgate.openai.OpenAI` and friends build the same HTTP client
in their constructor (:func:`metered_default_client`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from spendgate.sdk.httpx_compat import module_of, module_of_type
from spendgate.sdk.metering import InstrumentOptions
from spendgate.sdk.transport import METERED_TRANSPORTS, metered_transport

__all__ = ["instrument", "is_metered", "metered_default_client", "metered_http_client"]

C = TypeVar("C")

_MAX_CONNECTIONS = 1000
_MAX_KEEPALIVE = 100
"""The official SDKs' default connection limits."""

_METERED = METERED_TRANSPORTS


def is_metered(http_client: Any) -> bool:
    """True when an httpx client already sends through a metered transport."""
    return isinstance(getattr(http_client, "_transport", None), _METERED)


def _options(provider: str | None, metadata: Mapping[str, Any] | None) -> InstrumentOptions:
    return InstrumentOptions(provider=provider, metadata=dict(metadata or {}))


def _wrap(inner: Any, is_async: bool, options: InstrumentOptions, *, owns: bool) -> Any:
    if isinstance(inner, _METERED):
        return inner
    return metered_transport(inner, options, is_async=is_async, owns_inner=owns)


def _meter_mounts(client: Any, options: InstrumentOptions) -> Any:
    """Meter the per-URL transports (proxies) of a client this module built."""
    is_async = isinstance(client, module_of(client).AsyncClient)
    mounts = client._mounts
    for pattern, transport in list(mounts.items()):
        if transport is not None:
            mounts[pattern] = _wrap(transport, is_async, options, owns=True)
    return client


def _new_inner(http: Any, is_async: bool) -> Any:
    limits = http.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_KEEPALIVE)
    return http.AsyncHTTPTransport(limits=limits) if is_async else http.HTTPTransport(limits=limits)


def metered_default_client(
    factory: type[Any], *, provider: str | None = None, metadata: Mapping[str, Any] | None = None
) -> Any:
    """A new HTTP client made by an SDK's ``DefaultHttpxClient`` / ``DefaultAsyncHttpxClient``
    (its timeouts and redirects), sending through a metered transport."""
    http = module_of_type(factory)
    is_async = issubclass(factory, http.AsyncClient)
    options = _options(provider, metadata)
    transport = _wrap(_new_inner(http, is_async), is_async, options, owns=True)
    return _meter_mounts(factory(transport=transport), options)


def metered_http_client(
    base: Any, *, provider: str | None = None, metadata: Mapping[str, Any] | None = None
) -> Any:
    """An HTTP client like ``base`` (an httpx or httpx2 client, sync or async) that sends
    through a metered transport; ``base`` itself when it already does."""
    if is_metered(base):
        return base
    http = module_of(base)
    if not isinstance(base, http.Client | http.AsyncClient):
        raise TypeError(f"expected an httpx client, got {type(base).__name__}")
    is_async = isinstance(base, http.AsyncClient)
    options = _options(provider, metadata)
    sdk_default = type(base).__name__.endswith("HttpxClientWrapper")
    inner = _new_inner(http, is_async) if sdk_default else base._transport
    mounts = {
        pattern.pattern: None if t is None else _wrap(t, is_async, options, owns=sdk_default)
        for pattern, t in base._mounts.items()
    }
    cls = http.AsyncClient if is_async else http.Client
    # Everything of the caller's client that shapes a request, so a metered call sends
    # what the plain one sends (its TLS and proxy settings live in the transports kept).
    client = cls(
        transport=_wrap(inner, is_async, options, owns=sdk_default),
        mounts=mounts,
        timeout=base.timeout,
        follow_redirects=base.follow_redirects,
        max_redirects=base.max_redirects,
        headers=base.headers,
        params=base.params,
        cookies=base.cookies,
        auth=base.auth,
        base_url=base.base_url,
        event_hooks=base.event_hooks,
        trust_env=base.trust_env,
        default_encoding=base._default_encoding,
    )
    return _meter_mounts(client, options)


def instrument(client: C, *, provider: str | None = None, metadata: Mapping[str, Any] | None = None) -> C:
    """A copy of an official ``openai`` or ``anthropic`` client (sync or async) that prices
    every call, enforces ``spendgate.max_budget`` and runs the callbacks.

    Args:
        client: ``openai.OpenAI``, ``openai.AsyncOpenAI``, ``openai.AzureOpenAI``,
            ``anthropic.Anthropic``, ``anthropic.AsyncAnthropic`` … (anything with
            ``with_options(http_client=...)`` and an httpx client).
        provider: the provider OpenAI-style calls are priced as, when the base URL is
            not OpenAI's (``groq``, ``together_ai``, ``azure`` …); default ``openai``.
        metadata: passed to every call's callbacks (``litellm_params["metadata"]``);
            ``metadata["tags"]`` become ``request_tags``.

    Returns:
        The instrumented copy; read a call's cost with ``spendgate.cost_of(result)``.
    """
    base = getattr(client, "_client", None)
    copy = getattr(client, "with_options", None)
    if base is None or copy is None:
        raise TypeError(
            f"spendgate.instrument() takes an openai or anthropic client, got {type(client).__name__}"
        )
    http_client = metered_http_client(base, provider=provider, metadata=metadata)
    instrumented: C = copy(http_client=http_client)
    return instrumented

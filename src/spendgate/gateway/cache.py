"""The response cache (LiteLLM's ``litellm_settings.cache: true``): an identical request is
answered from it, without an upstream call, at $0; the ledger records it as a cache hit with
the cost it saved.

* **Key.** SHA-256 of the normalised request: the endpoint, the model group and the body
  without the fields that do not change the answer (:data:`_NOT_IN_KEY`: ``user``,
  ``metadata``, ``stream_options``, the ``cache`` controls …), serialised with sorted keys,
  so key order and whitespace do not matter. ``stream`` is part of it. With a
  ``namespace`` the key is ``<namespace>:<hex>`` (LiteLLM's form; sent back as
  ``x-litellm-cache-key``).
* **What is stored** is the upstream's own answer (the JSON body, or the SSE bytes of a
  stream) with the deployment that served it. A hit is replayed through that deployment's
  adapter like a fresh answer (:class:`Replayed` is an upstream response), so a streamed
  hit is a stream in the client's dialect, usage shown only if the client asked for it,
  and Anthropic answers are translated again for an OpenAI client.
* **Controls.** The request's ``cache`` field (removed before the request goes upstream):
  ``no-cache`` (do not answer from the cache), ``no-store`` (do not store this answer),
  ``ttl`` (seconds to keep this answer), ``s-maxage`` (accept only an answer at most this
  old), ``use-cache`` (with ``mode: default_off``, cache this request).
* **Stores.** ``local``: a :class:`cachetools.TLRUCache` bounded in bytes, each entry with
  its own expiry; ``redis``: redis-py, ``SET … PX ttl``, shared by every instance. A Redis
  that fails is a miss (and nothing stored), never an error to the client.

Only successful answers (``200``, the call billed ``success``) are stored.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from cachetools import TLRUCache

from spendgate.config import CacheParams, GatewayConfig
from spendgate.errors import ConfigurationError
from spendgate.gateway.deployments import Deployment
from spendgate.http.errors import InvalidField
from spendgate.providers.base import ClientCall
from spendgate.providers.http import UpstreamResponse

__all__ = [
    "CACHE_HIT",
    "CACHE_KEY",
    "CacheLookup",
    "CachedAnswer",
    "LocalResponseStore",
    "RedisResponseStore",
    "Replayed",
    "ResponseCache",
    "ResponseStore",
    "cache_from_config",
]

log = logging.getLogger("spendgate.gateway")

CACHE_HIT = "x-spendgate-cache-hit"
CACHE_KEY = "x-litellm-cache-key"

CALL_TYPES: Mapping[str, str] = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "completions",
    "atext_completion": "completions",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "responses": "responses",
    "aresponses": "responses",
    "anthropic_messages": "messages",
}
"""LiteLLM's call types the gateway caches → its endpoints."""
_NOT_CACHED = frozenset(
    {"transcription", "atranscription", "image_generation", "aimage_generation", "speech", "aspeech",
     "rerank", "arerank", "moderation", "amoderation"}
)  # fmt: skip
"""LiteLLM's call types the gateway does not cache (multipart uploads, binary answers, no route)."""
_NOT_IN_KEY = frozenset(
    {"cache", "user", "metadata", "stream_options", "timeout", "request_timeout", "num_retries",
     "fallbacks", "tags"}
)  # fmt: skip
"""Request fields that do not change the answer (attribution, transport, the controls)."""
_REPLAY_CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class CacheControls:
    """The request's ``cache`` field (LiteLLM's names)."""

    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    s_maxage: float | None = None
    use_cache: bool | None = None

    @classmethod
    def parse(cls, value: object) -> CacheControls:
        """From the body's ``cache`` value; a wrong type is a 422 naming the field."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise InvalidField("'cache' must be an object such as {\"no-cache\": true}", param="cache")
        out: dict[str, Any] = {}
        for name, item in value.items():
            field = str(name).replace("-", "_")
            if field in ("no_cache", "no_store", "use_cache"):
                if not isinstance(item, bool):
                    raise InvalidField(f"'cache.{name}' must be a boolean", param=f"cache.{name}")
            elif field in ("ttl", "s_maxage"):
                if isinstance(item, bool) or not isinstance(item, int | float) or not 0 < item <= 31_536_000:
                    raise InvalidField(
                        f"'cache.{name}' must be a number of seconds in (0, 31536000]", param=f"cache.{name}"
                    )
                item = float(item)
            else:
                raise InvalidField(
                    f"'cache.{name}' is not a cache control (no-cache, no-store, ttl, s-maxage, use-cache)",
                    param=f"cache.{name}",
                )
            out[field] = item
        return cls(**out)


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored upstream answer."""

    deployment_id: str
    stream: bool
    content_type: str
    body: bytes
    """The upstream's body (for a stream: its SSE bytes, as received)."""
    stored_at: float
    """Wall-clock seconds (epoch) when it was stored."""

    def encode(self) -> bytes:
        head = orjson.dumps(
            {"v": 1, "deployment": self.deployment_id, "stream": self.stream, "type": self.content_type,
             "at": self.stored_at}
        )  # fmt: skip
        return head + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes) -> CachedAnswer | None:
        """None for an entry this version cannot read (it is then a miss)."""
        head, _, body = data.partition(b"\n")
        try:
            meta = orjson.loads(head)
            if meta.get("v") != 1:
                return None
            return cls(meta["deployment"], bool(meta["stream"]), str(meta["type"]), body, float(meta["at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass(slots=True)
class CacheLookup:
    """The cache's view of one request: its key, controls and, on a hit, the stored answer."""

    key: str
    controls: CacheControls
    hit: CachedAnswer | None = None
    deployment: Deployment | None = None
    """On a hit: the deployment the answer came from (the call is priced there)."""

    @property
    def storable(self) -> bool:
        return not self.controls.no_store


class ResponseStore(Protocol):
    """Where cached answers live (bytes in, bytes out, each with its own time to live)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Item:
    data: bytes
    expires: float


class LocalResponseStore:
    """In this process: an LRU bounded in bytes whose entries each expire at their own time."""

    def __init__(self, max_bytes: int) -> None:
        self._items: TLRUCache[str, _Item] = TLRUCache(
            maxsize=max_bytes,
            ttu=lambda _key, item, _now: item.expires,
            timer=time.monotonic,
            getsizeof=lambda item: len(item.data),
        )

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        return None if item is None else item.data

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) <= self._items.maxsize:
            self._items[key] = _Item(value, time.monotonic() + ttl)

    async def close(self) -> None:
        self._items.clear()


class RedisResponseStore:
    """In Redis, shared by every gateway instance. A failing Redis is a miss, never an error."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._warned = 0.0

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(key)
        except Exception as exc:  # redis-py's errors, OSError, timeouts: the cache is optional
            self._warn("read", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._client.set(key, value, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._warn("write", exc)

    async def close(self) -> None:
        await self._client.aclose()

    def _warn(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 60:  # one line a minute while Redis is failing
            self._warned = now
            log.warning("response cache: Redis %s failed (%s): answering without the cache", what, exc)


class Replayed:
    """A stored answer as an upstream response, so the pipeline replays it as a fresh one."""

    def __init__(self, answer: CachedAnswer) -> None:
        self.status_code = 200
        self.headers = {"content-type": answer.content_type}
        self._body = answer.body

    async def aread(self) -> bytes:
        return self._body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), _REPLAY_CHUNK):
            yield self._body[start : start + _REPLAY_CHUNK]

    async def aclose(self) -> None:
        return None


class Recording:
    """An upstream stream that keeps what it relays (up to a size), to be stored when it ends."""

    def __init__(self, upstream: UpstreamResponse, limit: int) -> None:
        self.upstream = upstream
        self.status_code = upstream.status_code
        self.headers = upstream.headers
        self._limit = limit
        self._parts: list[bytes] | None = []
        self._size = 0

    @property
    def data(self) -> bytes | None:
        """What was relayed (None: it outgrew the limit)."""
        return None if self._parts is None else b"".join(self._parts)

    async def aread(self) -> bytes:
        return await self.upstream.aread()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self.upstream.aiter_bytes():
            if self._parts is not None:
                self._size += len(chunk)
                if self._size <= self._limit:
                    self._parts.append(chunk)
                else:
                    self._parts = None
            yield chunk

    async def aclose(self) -> None:
        await self.upstream.aclose()


class ResponseCache:
    """The cache step of the request path (see the module docstring)."""

    def __init__(
        self,
        store: ResponseStore,
        deployments: Mapping[str, Deployment],
        *,
        ttl: float = 600,
        namespace: str | None = None,
        endpoints: frozenset[str] = frozenset(CALL_TYPES.values()),
        default_on: bool = True,
        max_item_bytes: int = 4 << 20,
    ) -> None:
        self.backend = store
        self.deployments = deployments
        self.ttl = ttl
        self.namespace = namespace
        self.endpoints = endpoints
        self.default_on = default_on
        self.max_item_bytes = max_item_bytes

    async def lookup(self, call: ClientCall) -> CacheLookup | None:
        """The request's key and, if the cache holds a fresh answer, that answer. Removes the
        ``cache`` controls from the body (they never go upstream). None: not cached."""
        controls = CacheControls.parse(call.payload.pop("cache", None))
        if call.endpoint not in self.endpoints:
            return None
        if not (controls.use_cache if controls.use_cache is not None else self.default_on):
            return None
        found = CacheLookup(self.key(call), controls)
        if controls.no_cache:
            return found
        data = await self.backend.get(found.key)
        answer = CachedAnswer.decode(data) if data is not None else None
        if answer is None or answer.stream != call.stream:
            return found
        if controls.s_maxage is not None and time.time() - answer.stored_at > controls.s_maxage:
            return found
        deployment = self.deployments.get(answer.deployment_id)
        if deployment is not None and deployment.group == call.model:
            found.hit, found.deployment = answer, deployment
        return found

    def key(self, call: ClientCall) -> str:
        """The cache key of a request (LiteLLM's form: ``[namespace:]<sha256 hex>``)."""
        body = {k: v for k, v in call.payload.items() if k not in _NOT_IN_KEY}
        body["model"] = call.model
        digest = hashlib.sha256(
            orjson.dumps({"endpoint": call.endpoint, "body": body}, option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        return f"{self.namespace}:{digest}" if self.namespace else digest

    def recording(self, upstream: UpstreamResponse) -> Recording:
        """Wrap a streamed answer so it can be stored when it ends."""
        return Recording(upstream, self.max_item_bytes)

    async def store(
        self, lookup: CacheLookup, deployment: Deployment, upstream: UpstreamResponse, body: bytes | None
    ) -> None:
        """Store a successful answer (``body``; None: the stream that ``upstream`` recorded)."""
        if not lookup.storable or upstream.status_code != 200:
            return
        stream = body is None
        if body is None:
            body = upstream.data if isinstance(upstream, Recording) else None
        if body is None or len(body) > self.max_item_bytes:
            return
        answer = CachedAnswer(
            deployment.id, stream, upstream.headers.get("content-type", ""), body, time.time()
        )
        await self.backend.set(lookup.key, answer.encode(), lookup.controls.ttl or self.ttl)

    async def close(self) -> None:
        await self.backend.close()


def cache_from_config(config: GatewayConfig, deployments: Mapping[str, Deployment]) -> ResponseCache | None:
    """The response cache ``litellm_settings.cache`` asks for (None when it is off).

    Raises:
        ConfigurationError: an unknown call type, or ``type: redis`` with no Redis to use.
    """
    settings = config.litellm_settings
    if not settings.cache:
        return None
    params = settings.cache_params
    store: ResponseStore
    if params.type == "redis":
        url = _redis_url(params) or config.general_settings.redis_url
        if not url:
            raise ConfigurationError(
                "litellm_settings.cache_params: type redis needs url (or host), or general_settings.redis_url"
            )
        store = RedisResponseStore(url)
    else:
        store = LocalResponseStore(int(params.max_size_mb * (1 << 20)))
    return ResponseCache(
        store,
        deployments,
        ttl=params.ttl,
        namespace=params.namespace,
        endpoints=_endpoints(params),
        default_on=params.mode == "default_on",
        max_item_bytes=int(params.max_item_mb * (1 << 20)),
    )


def _redis_url(params: CacheParams) -> str | None:
    if params.url:
        return params.url
    if params.host:
        auth = f":{params.password}@" if params.password else ""
        return f"redis://{auth}{params.host}:{params.port or 6379}/0"
    return None


def _endpoints(params: CacheParams) -> frozenset[str]:
    if params.supported_call_types is None:
        return frozenset(CALL_TYPES.values())
    out: set[str] = set()
    for name in params.supported_call_types:
        if name in CALL_TYPES:
            out.add(CALL_TYPES[name])
        elif name in _NOT_CACHED:
            log.warning("config: litellm_settings.cache_params.supported_call_types: %r is not cached", name)
        else:
            raise ConfigurationError(
                f"litellm_settings.cache_params.supported_call_types: unknown call type {name!r} "
                f"(cached: {', '.join(sorted(CALL_TYPES))})"
            )
    return frozenset(out)

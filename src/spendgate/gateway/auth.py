"""Who is calling: the master key, or a virtual key looked up (hashed) in the database.

The key comes from ``Authorization: Bearer <key>``, ``x-api-key`` (Anthropic clients) or
``api-key`` (Azure clients). Only its SHA-256 hash (:func:`spendgate.core.keys.hash_key`)
is compared, cached and recorded. Look-ups are cached in-process for a short TTL
(``general_settings.key_cache_ttl_seconds``), misses included, so the request path does
not wait for SQL once a key has been seen. A blocked key fails after at most one TTL; an
expired key at its expiry time.

The cache is a :class:`~spendgate.gateway.lookups.LookupCache`: concurrent look-ups of one
key share one query, the wait for the database is bounded, and while the database is
unreachable a key seen before is still honoured (up to
``general_settings.stale_cache_max_seconds`` past its TTL); a key never seen gets a 503
(``database_unavailable``), never a 500 or a hang.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.keys import hash_key
from spendgate.entities.reader import EntityReader
from spendgate.gateway.lookups import LookupCache, database_health
from spendgate.http.credentials import key_from_headers
from spendgate.http.errors import AuthenticationFailed, GatewayError, PermissionDenied

__all__ = ["Authenticator", "Principal"]

_MAX_CACHED = 50_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller and the scopes its key belongs to."""

    key_hash: str | None
    """The key's hash (None only when authentication is off)."""
    key_id: str | None = None
    """The key's stable id, which budgets, counters and spend events name it by (its hash
    changes when it is regenerated; this does not)."""
    is_master: bool = False
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user_id: str | None = None
    """The end customer the key is bound to, if any (wins over the request's ``user``)."""
    models: tuple[str, ...] = ()
    """Model groups the key may use; empty means all."""
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    expires: datetime | None = None
    """When the key expires (UTC), if it does."""

    def may_use(self, model_group: str) -> bool:
        return not self.models or model_group in self.models or "all-proxy-models" in self.models


ANONYMOUS = Principal(key_hash=None)


class Authenticator:
    """Resolves a request's credentials to a :class:`Principal` (or raises 401/403)."""

    def __init__(
        self,
        master_key: str | None,
        engine: AsyncEngine | None,
        *,
        ttl_seconds: float = 10.0,
        stale_seconds: float = 3600.0,
        wait_seconds: float | None = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._master_hash = hash_key(master_key) if master_key else None
        self._reader = None if engine is None else EntityReader(engine)
        self._cache: LookupCache[Principal | GatewayError] = LookupCache(
            ttl_seconds,
            stale_seconds=stale_seconds,
            wait=wait_seconds,
            what="API key",
            health=None if engine is None else database_health(engine),
            clock=clock,
            max_entries=_MAX_CACHED,
        )

    @property
    def enabled(self) -> bool:
        return self._master_hash is not None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if self._master_hash is None:
            return ANONYMOUS
        raw = key_from_headers(headers)
        if raw is None:
            raise AuthenticationFailed(
                "no API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                code="missing_api_key",
            )
        digest = hash_key(raw)
        if hmac.compare_digest(digest, self._master_hash):
            return Principal(key_hash=digest, key_id=digest, is_master=True, key_alias="master_key")
        result = await self._cache.get(digest, lambda: self._lookup(digest))
        if isinstance(result, GatewayError):
            raise result
        if result.expires is not None and result.expires <= datetime.now(UTC):
            raise AuthenticationFailed("this API key has expired", code="key_expired")
        return result

    def forget(self, key_hash: str | None = None) -> None:
        """Drop cached look-ups (one key by its hash, or all): the next request reads the
        database."""
        self._cache.forget(key_hash)

    async def _lookup(self, digest: str) -> Principal | GatewayError:
        if self._reader is None:
            return AuthenticationFailed("invalid API key")
        key = await self._reader.key_by_hash(digest)
        if key is None:
            return AuthenticationFailed("invalid API key")
        if key.blocked:
            return PermissionDenied("this API key is blocked", code="key_blocked")
        if key.expires is not None and key.expires <= datetime.now(UTC):
            return AuthenticationFailed("this API key has expired", code="key_expired")
        if key.team_blocked:
            return PermissionDenied(f"team {key.team_id!r} is blocked", code="team_blocked")
        if key.organization_blocked:
            return PermissionDenied(
                f"organization {key.organization_id!r} is blocked", code="organization_blocked"
            )
        if key.user_blocked:
            return PermissionDenied(f"user {key.user_id!r} is blocked", code="user_blocked")
        return Principal(
            key_hash=digest,
            key_id=key.key_id,
            key_alias=key.key_alias,
            user_id=key.user_id,
            team_id=key.team_id,
            organization_id=key.organization_id,
            end_user_id=key.end_user_id,
            models=key.models or key.team_models,
            tags=key.tags,
            metadata=key.metadata,
            expires=key.expires,
        )

"""Leader locks: a lease per job name, so N gateway instances run each job once (DESIGN §5.11).

A :class:`LeaderLock` is one contender: every runner gets its own instance (``lock_for``
makes a new one per call), and an instance holds at most one lease per name.

- ``acquire(name, ttl)`` takes the lease if it is free, lapsed or already this instance's,
  and says whether it did;
- ``renew(name, ttl)`` extends a lease this instance holds; False means it was lost;
- ``release(name)`` gives it up (a no-op when not held); ``close()`` releases everything.

Three implementations, picked by :func:`lock_for`:

- :class:`LocalLock`: one process (the embedded SQLite set-up). Leases live in a dict
  shared by every ``LocalLock`` of the process, so two runners in one process still
  exclude each other; a lease not renewed within ``ttl`` lapses.
- :class:`~spendgate.jobs.redis_lock.RedisLock`: redis-py's lock (SET NX PX with a random
  token; extend and release only while the token matches); the key expires with the lease.
- :class:`PostgresLock`: ``pg_try_advisory_lock`` on a dedicated connection held while
  leader. The server drops the lock with the session, so a crashed leader frees it; renewal
  is a round trip on that connection, and ``ttl`` only bounds how long it may take.

Every job's effects are idempotent anyway, so a lease lost mid-run can never bill twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from spendgate.stores.database.engine import is_postgres

__all__ = ["LeaderLock", "LocalLock", "PostgresLock", "lock_for"]


class LeaderLock(Protocol):
    """A lease per name; one instance is one contender (see the module docstring)."""

    async def acquire(self, name: str, ttl: float) -> bool: ...

    async def renew(self, name: str, ttl: float) -> bool: ...

    async def release(self, name: str) -> None: ...

    async def close(self) -> None: ...


# (scope, name) -> (holder, monotonic deadline): shared by every LocalLock in the process.
_LOCAL_LEASES: dict[tuple[str, str], tuple[LocalLock, float]] = {}


class LocalLock:
    """Leases in process memory: one holder per name within a ``scope`` (the database the
    jobs work on: two gateways of one process on different databases each run their jobs)."""

    def __init__(self, scope: str = "") -> None:
        self.scope = scope

    async def acquire(self, name: str, ttl: float) -> bool:
        now = time.monotonic()
        key = (self.scope, name)
        lease = _LOCAL_LEASES.get(key)
        if lease is not None and lease[0] is not self and lease[1] > now:
            return False
        _LOCAL_LEASES[key] = (self, now + ttl)
        return True

    async def renew(self, name: str, ttl: float) -> bool:
        key = (self.scope, name)
        lease = _LOCAL_LEASES.get(key)
        if lease is None or lease[0] is not self or lease[1] <= time.monotonic():
            return False
        _LOCAL_LEASES[key] = (self, time.monotonic() + ttl)
        return True

    async def release(self, name: str) -> None:
        key = (self.scope, name)
        lease = _LOCAL_LEASES.get(key)
        if lease is not None and lease[0] is self:
            del _LOCAL_LEASES[key]

    async def close(self) -> None:
        for key in [k for k, (holder, _) in _LOCAL_LEASES.items() if holder is self]:
            del _LOCAL_LEASES[key]


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresLock:
    """Leases as session advisory locks, one dedicated connection per lease held."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._held: dict[str, AsyncConnection] = {}

    async def acquire(self, name: str, ttl: float) -> bool:
        if name in self._held and await self.renew(name, ttl):
            return True
        conn = await self.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            query = text("SELECT pg_try_advisory_lock(:key)")
            got = await asyncio.wait_for(conn.scalar(query, {"key": _advisory_key(name)}), ttl)
        except BaseException:
            await _discard(conn)
            raise
        if not got:
            await conn.close()
            return False
        self._held[name] = conn
        return True

    async def renew(self, name: str, ttl: float) -> bool:
        conn = self._held.get(name)
        if conn is None:
            return False
        try:
            # The session holds the lock until it ends, so a live session is a held lease.
            await asyncio.wait_for(conn.scalar(text("SELECT 1")), ttl)
        except Exception:
            del self._held[name]
            await _discard(conn)
            return False
        return True

    async def release(self, name: str) -> None:
        conn = self._held.pop(name, None)
        if conn is not None:
            await _discard(conn)

    async def close(self) -> None:
        for name in list(self._held):
            await self.release(name)


async def _discard(conn: AsyncConnection) -> None:
    """Close the connection for good (not back to the pool): its session's locks go with it."""
    try:
        await conn.invalidate()
    finally:
        await conn.close()


def lock_for(engine: AsyncEngine | None, redis_url: str | None, *, prefix: str = "spendgate") -> LeaderLock:
    """A new contender: Redis when configured, else PostgreSQL, else the process (SQLite).

    The lease is for the jobs of one deployment: on Redis its keys carry ``prefix`` (the
    gateway's ``enforcement_key_prefix``, so two deployments sharing a Redis each run their
    own jobs); in process it is scoped by the database; a PostgreSQL advisory lock belongs
    to its database already."""
    if redis_url:
        from spendgate.jobs.redis_lock import RedisLock  # redis-py only where Redis is configured

        return RedisLock.from_url(redis_url, prefix=f"{prefix}:job-lock:")
    if engine is not None and is_postgres(engine):
        return PostgresLock(engine)
    return LocalLock("" if engine is None else engine.url.render_as_string(hide_password=True))

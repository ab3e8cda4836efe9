"""Cached database look-ups on the request path, kept usable through a database outage.

The gateway reads keys and the entities above them (user, team, organization, customer,
tag budgets) from the database and caches them for ``general_settings.key_cache_ttl_seconds``.
If every expired entry were refreshed synchronously, a database outage would take all
virtual-key traffic down with it as soon as the TTL ran out. So a :class:`LookupCache`:

- serves a fresh entry from memory;
- refreshes an expired one with **one** load per key at a time (single flight: concurrent
  requests for a key share the load and its wait);
- bounds every wait for the database (``general_settings.database_lookup_timeout_seconds``);
- when the load fails because the database cannot be reached, serves the expired entry
  (at most ``general_settings.stale_cache_max_seconds`` past its TTL) and, until a load
  succeeds again, every cache of that database serves its expired entries at once while
  refreshing them in the background (so only the first request of an outage waits);
- otherwise (never seen, or too stale) raises :class:`DatabaseUnavailable`, a 503 in the
  gateway's error shape (``service_unavailable`` / ``database_unavailable``).

An error that is not an outage (a bug, a constraint) is raised unchanged: serving stale
data must not hide it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from spendgate.http.errors import DatabaseUnavailable, is_database_outage

__all__ = [
    "DatabaseHealth",
    "LookupCache",
    "bounded",
    "database_health",
]

log = logging.getLogger("spendgate.gateway")

V = TypeVar("V")
R = TypeVar("R")

_RETRY_SECONDS = 1.0
"""While the database is down, how often one key's background refresh is tried again."""


async def bounded(load: Callable[[], Awaitable[R]], seconds: float | None) -> R:
    """``await load()``, given up after ``seconds`` with :class:`TimeoutError`.

    The load is then cancelled but not waited for: its clean-up (asyncpg closes a
    connection gracefully for up to 2 s, even one that no longer answers) runs on in the
    background, past the caller's bound.
    """
    if seconds is None:
        return await load()
    task = asyncio.ensure_future(load())
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.shield(task)
    finally:
        if not task.done():
            task.cancel()
            task.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Consume a background future's outcome (no "exception was never retrieved")."""
    if not future.cancelled():
        future.exception()


class DatabaseHealth:
    """Whether the database is known to be down, shared by every cache of one engine (see
    :func:`database_health`): once one look-up found it unreachable, the others serve their
    stale entries at once instead of each waiting out the timeout in turn."""

    def __init__(self) -> None:
        self.down = False

    def failed(self, exc: BaseException, what: str, stale_seconds: float) -> None:
        if not self.down:
            log.warning(
                "database unreachable (%s: %s): serving cached %ss up to %.0f s past their TTL",
                type(exc).__name__,
                exc,
                what,
                stale_seconds,
            )
        self.down = True

    def succeeded(self) -> None:
        if self.down:
            log.warning("database reachable again: cached look-ups refreshing")
        self.down = False


_HEALTH: weakref.WeakKeyDictionary[object, DatabaseHealth] = weakref.WeakKeyDictionary()


def database_health(engine: object) -> DatabaseHealth:
    """The one :class:`DatabaseHealth` of ``engine`` (created on first use)."""
    health = _HEALTH.get(engine)
    if health is None:
        health = _HEALTH[engine] = DatabaseHealth()
    return health


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    fresh_until: float
    """Monotonic time until which the value is served without a refresh."""


class LookupCache(Generic[V]):
    """A TTL cache of database look-ups with single flight, a bounded wait and stale
    service during a database outage (see the module docstring).

    Args:
        ttl: seconds an entry is served before it is refreshed.
        stale_seconds: how long past its TTL an entry may be served while the database is
            unreachable (0: never).
        wait: the longest a caller waits for the database, in seconds (None: no bound). A
            caller joining a load in flight waits only until that load's deadline.
        what: what is looked up, for log lines and error messages.
        health: the database's shared state (:func:`database_health`; default: this
            cache's own).
        clock: monotonic seconds for the TTL (injected in tests).
        max_entries: the cache is emptied when it reaches this size.
    """

    def __init__(
        self,
        ttl: float,
        *,
        stale_seconds: float = 0.0,
        wait: float | None = None,
        what: str = "look-up",
        health: DatabaseHealth | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 50_000,
    ) -> None:
        self.ttl = ttl
        self.stale_seconds = stale_seconds
        self.wait = wait
        self.what = what
        self.health = health or DatabaseHealth()
        self.clock = clock
        self.max_entries = max_entries
        self._values: dict[str, _Entry[V]] = {}
        self._loading: dict[str, tuple[asyncio.Future[V], float | None]] = {}
        """Loads in flight: (future, loop-time deadline)."""
        self._retry_at: dict[str, float] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        now = self.clock()
        hit = self._values.get(key)
        if hit is not None and hit.fresh_until > now:
            return hit.value
        usable = hit is not None and now - hit.fresh_until <= self.stale_seconds
        if usable and self.health.down:
            # Known outage: answer now from the stale entry; refresh behind it.
            assert hit is not None
            if key not in self._loading and now >= self._retry_at.get(key, 0.0):
                self._start(key, load)
            return hit.value
        pending, deadline = self._loading.get(key) or self._start(key, load)
        try:
            # Shielded: a caller that gives up does not cancel the load the others wait for.
            # Bounded here too: a load cancelled at its deadline may take a while to clean up
            # (asyncpg closes a connection gracefully for up to 2 s), and nobody waits for that.
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(pending)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            self.health.failed(exc, self.what, self.stale_seconds)
            if usable:
                assert hit is not None
                return hit.value
            raise DatabaseUnavailable(
                f"the database is unavailable and this {self.what} is not cached; try again shortly"
            ) from None

    def _start(self, key: str, load: Callable[[], Awaitable[V]]) -> tuple[asyncio.Future[V], float | None]:
        loop = asyncio.get_running_loop()
        deadline = None if self.wait is None else loop.time() + self.wait
        future = asyncio.ensure_future(self._load(key, load))
        # A background refresh nobody awaits must not log "exception never retrieved".
        future.add_done_callback(_retrieve)
        self._loading[key] = (future, deadline)
        return future, deadline

    async def _load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await bounded(load, self.wait)
        except Exception as exc:
            if is_database_outage(exc):
                self.health.failed(exc, self.what, self.stale_seconds)
                self._retry_at[key] = self.clock() + _RETRY_SECONDS
            raise
        finally:
            self._loading.pop(key, None)
        self.health.succeeded()
        self._retry_at.pop(key, None)
        if len(self._values) >= self.max_entries:
            self._values.clear()
        self._values[key] = _Entry(value, self.clock() + self.ttl)
        return value

    def forget(self, key: str | None = None) -> None:
        """Drop one entry (or all): the next look-up reads the database."""
        if key is None:
            self._values.clear()
        else:
            self._values.pop(key, None)

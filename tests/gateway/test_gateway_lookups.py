"""LookupCache, the cache under the gateway's key and entity look-ups: single flight, a
bounded wait, stale entries through a database outage and only through one (the outage
itself, end to end, is in test_gateway_outages.py)."""

from __future__ import annotations

import asyncio

import pytest

from spendgate.gateway.lookups import LookupCache
from spendgate.http.errors import DatabaseUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """A look-up that returns ``value``, raises ``error``, or blocks until released."""

    def __init__(self, value: str = "v1") -> None:
        self.value = value
        self.error: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def test_concurrent_misses_share_one_load() -> None:
    cache: LookupCache[str] = LookupCache(10, wait=5)
    load = Loader()
    load.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get("k", load)) for _ in range(20)]
    await asyncio.sleep(0.01)
    load.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 20
    assert load.calls == 1


async def test_expired_entry_is_served_while_the_database_is_down_and_refreshed_after() -> None:
    clock = Clock()
    cache: LookupCache[str] = LookupCache(10, stale_seconds=60, wait=5, clock=clock)
    load = Loader()
    assert await cache.get("k", load) == "v1"
    clock.now += 30  # past the TTL
    load.error = ConnectionRefusedError("refused")
    assert await cache.get("k", load) == "v1"
    assert cache.health.down
    load.error, load.value = None, "v2"
    clock.now += 2  # past the retry interval: the next request refreshes (in the background)
    assert await cache.get("k", load) == "v1"
    await asyncio.sleep(0.01)
    assert not cache.health.down
    assert await cache.get("k", load) == "v2"


async def test_too_stale_or_never_seen_is_a_503() -> None:
    clock = Clock()
    cache: LookupCache[str] = LookupCache(10, stale_seconds=60, wait=5, clock=clock)
    load = Loader()
    await cache.get("k", load)
    clock.now += 10 + 61
    load.error = TimeoutError()
    with pytest.raises(DatabaseUnavailable) as caught:
        await cache.get("k", load)
    assert (caught.value.status, caught.value.type, caught.value.code) == (
        503,
        "service_unavailable",
        "database_unavailable",
    )
    with pytest.raises(DatabaseUnavailable):
        await cache.get("never-seen", load)


async def test_an_error_that_is_not_an_outage_is_not_hidden() -> None:
    clock = Clock()
    cache: LookupCache[str] = LookupCache(10, stale_seconds=60, wait=5, clock=clock)
    load = Loader()
    await cache.get("k", load)
    clock.now += 30
    load.error = ValueError("a bug")
    with pytest.raises(ValueError, match="a bug"):
        await cache.get("k", load)


async def test_a_database_that_never_answers_costs_one_bounded_wait() -> None:
    clock = Clock()
    cache: LookupCache[str] = LookupCache(10, stale_seconds=60, wait=0.05, clock=clock)
    load = Loader()
    await cache.get("k", load)
    await cache.get("other", load)
    clock.now += 30
    load.gate = asyncio.Event()  # blackhole: never answers
    # The first request waits out the bound, then gets the stale entry.
    assert await asyncio.wait_for(cache.get("k", load), 5) == "v1"
    # The outage is now known: the next requests answer at once, the refresh runs behind.
    calls = load.calls
    assert await cache.get("other", load) == "v1"
    await asyncio.sleep(0.01)
    assert load.calls == calls + 1  # a background refresh was started, not awaited
    load.gate.set()

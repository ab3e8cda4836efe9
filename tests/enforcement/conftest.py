"""Fixtures for the enforcement suite: a storage per backend, a clock, an enforcer factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from counter_backends import REDIS_URL, SKIP_REDIS, FakeClock, unique_prefix
from spendgate.enforcement import Enforcer, MemoryStorage, Storage


async def _redis_storage(prefix: str) -> Storage:
    from spendgate.stores.counters.redis import RedisStorage

    # Generous timeouts: the shared CI machine can be loaded; a timeout would fail the test.
    storage = RedisStorage.from_url(REDIS_URL, prefix=prefix, socket_timeout=15, socket_connect_timeout=5)
    try:
        await asyncio.wait_for(storage.client.ping(), 5)
    except Exception as exc:
        await storage.close()
        if SKIP_REDIS:
            pytest.skip("SPENDGATE_TEST_SKIP_REDIS=1")
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc!r}). Start it, point "
            "SPENDGATE_TEST_REDIS_URL at one, or set SPENDGATE_TEST_SKIP_REDIS=1 to skip the "
            "Redis tests in a local run.",
            pytrace=False,
        )
    return storage


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "memory"))


@pytest_asyncio.fixture
async def storage(backend: str) -> AsyncIterator[Storage]:
    prefix = unique_prefix()
    store: Storage = MemoryStorage(prefix=prefix) if backend == "memory" else await _redis_storage(prefix)
    try:
        yield store
    finally:
        await store.clear()
        await store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_enforcer(storage: Storage, clock: FakeClock) -> Callable[..., Enforcer]:
    def make(**options: Any) -> Enforcer:
        options.setdefault("clock", clock)
        return Enforcer(storage, **options)

    return make

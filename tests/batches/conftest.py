"""Fixtures of the batch settlement and poller tests: the mock provider, counters (in
process and on Redis) under an enforcer on the tests' clock, the upstream client, a real
recorder and sessions on the migrated test database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from test_batch_settlement import NOW

from counter_backends import REDIS_URL, SKIP_REDIS, FakeClock, unique_prefix
from spendgate.enforcement import Enforcer, MemoryStorage, Storage
from spendgate.ledger.recorder import Recorder
from spendgate.providers.http import UpstreamClient, make_upstream_client
from spendgate.providers.mock import MockServer, run_mock_provider


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def mock(mock_server: MockServer) -> MockServer:
    mock_server.reset()
    return mock_server


@pytest_asyncio.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    prefix = unique_prefix()
    if request.param == "memory":
        store: Storage = MemoryStorage(prefix=prefix)
    else:
        if SKIP_REDIS:
            pytest.skip("SPENDGATE_TEST_SKIP_REDIS=1")
        from spendgate.stores.counters.redis import RedisStorage

        store = RedisStorage.from_url(REDIS_URL, prefix=prefix, socket_timeout=15, socket_connect_timeout=5)
    try:
        yield store
    finally:
        await store.clear()
        await store.close()


@pytest.fixture
def enforcer(storage: Storage) -> Enforcer:
    return Enforcer(storage, clock=FakeClock(NOW))


@pytest_asyncio.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream = make_upstream_client("httpx")
    yield upstream
    await upstream.aclose()


@pytest_asyncio.fixture
async def recorder(engine: AsyncEngine, journal_dir: Path) -> AsyncIterator[Recorder]:
    async with Recorder(engine, journal_dir) as rec:
        yield rec


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

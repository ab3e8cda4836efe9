"""Fixtures of the alert tests: real receivers (see ``alert_receivers``), the mock provider
for the tests that run a gateway, and PostgreSQL behind a fault proxy for the outage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from alert_receivers import HttpReceiver, SmtpReceiver
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import clear_database
from netfaults import FaultProxy
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.stores.database import create_engine


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    """The mock provider, for the tests that run a gateway in front of it."""
    with run_mock_provider() as server:
        yield server


@pytest_asyncio.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the test PostgreSQL (``cut()`` it for an outage)."""
    url = make_url(postgres_url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as fault:
        yield fault


@pytest_asyncio.fixture
async def pg_direct(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """The test's own view of PostgreSQL (never through the proxy), emptied first."""
    engine = create_engine(postgres_url)
    await clear_database(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def pg_proxied(postgres_url: str, pg_proxy: FaultProxy) -> AsyncIterator[AsyncEngine]:
    """An instance's engine on PostgreSQL through the proxy, with short timeouts."""
    url = make_url(postgres_url).set(host="127.0.0.1", port=pg_proxy.port)
    engine = create_engine(url, connect_timeout=2, command_timeout=2, pool_timeout=2)
    try:
        yield engine
    finally:
        await engine.dispose()

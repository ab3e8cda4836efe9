"""Fixtures: the mock provider and one gateway in front of it, both on real loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anthropic
import openai
import pytest
import pytest_asyncio
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config

from spendgate.providers.mock import MockServer, run_mock_provider


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def mock(mock_server: MockServer) -> MockServer:
    """The mock provider with fresh counters and no queued faults."""
    mock_server.reset()
    return mock_server


@pytest.fixture(scope="session")
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="session")
def gateway(mock_server: MockServer, gateway_dir: Path) -> Iterator[GatewayServer]:
    config = make_config(mock_server.base_url, gateway_dir / "spendgate.db", gateway_dir / "journal")
    server = GatewayServer(config).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ledger(gateway: GatewayServer, gateway_dir: Path) -> Ledger:
    return Ledger(gateway_dir / "spendgate.db")


@pytest.fixture
def client(gateway: GatewayServer, mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        yield c


@pytest_asyncio.fixture
async def async_client(gateway: GatewayServer, mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        yield c


@pytest.fixture
def anthropic_client(gateway: GatewayServer, mock: MockServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        yield c


@pytest_asyncio.fixture
async def async_anthropic_client(
    gateway: GatewayServer, mock: MockServer
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20
    ) as c:
        yield c

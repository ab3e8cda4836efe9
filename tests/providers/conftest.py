"""Fixtures: one mock provider on a real loopback port for the session, reset per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest
import pytest_asyncio

from spendgate.providers.mock import MockServer, run_mock_provider


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def mock(mock_server: MockServer) -> MockServer:
    """The session's mock provider with fresh counters, no queued faults."""
    mock_server.reset()
    return mock_server


@pytest.fixture
def openai_client(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def async_openai_client(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=mock.url, api_key="sk-test", max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def anthropic_client(mock: MockServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock.base_url, api_key="ak-test", max_retries=0, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def async_anthropic_client(mock: MockServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=mock.base_url, api_key="ak-test", max_retries=0, timeout=10
    ) as client:
        yield client

"""The gateway through a PostgreSQL outage (a TCP proxy that cuts or blackholes it) and a
Redis restart (a private redis-server, stopped and started).

What must hold (docs/gateway.md, "Database and Redis outages"): a virtual key seen before
the outage keeps working past its cache TTL, and its calls are billed exactly once when
the database is back; a key never seen gets a 503 ``database_unavailable`` in the OpenAI
error shape within the configured wait, never a 500 and never a hang; after a Redis
restart the first request succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
from gateway_helpers import GatewayServer
from limits_helpers import Admin, cent_call, limits_config
from sqlalchemy.engine import make_url

from netfaults import FaultProxy, RedisServer
from spendgate.providers.mock import MockServer

pytestmark = pytest.mark.postgres

WAIT = 1.5
"""general_settings.database_lookup_timeout_seconds in these gateways."""
CLIENT_TIMEOUT = 10 * WAIT
"""A request not answered by then hung: far past the configured wait."""
UNAVAILABLE = {"type": "service_unavailable", "code": "database_unavailable", "param": None}


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FaultProxy]:
    url = make_url(postgres_url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as p:
        yield p


def _outage_gateway(
    mock: MockServer, tmp_path: Path, postgres_url: str, proxy: FaultProxy, **general: Any
) -> GatewayServer:
    through_proxy = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    config = limits_config(
        mock.base_url,
        tmp_path,
        database_url=through_proxy.render_as_string(hide_password=False),
        key_cache_ttl_seconds=0.2,
        database_lookup_timeout_seconds=WAIT,
        database_connect_timeout_seconds=1,
        database_command_timeout_seconds=2,
        database_pool_timeout_seconds=1,
        **general,
    )
    return GatewayServer(config)


@pytest.fixture
async def clients(mock: MockServer) -> AsyncIterator[list[openai.AsyncOpenAI]]:
    made: list[openai.AsyncOpenAI] = []
    yield made
    for c in made:
        await c.close()


async def _call(
    gateway: GatewayServer, key: str, clients: list[openai.AsyncOpenAI]
) -> tuple[int, dict[str, Any], str]:
    """(status, error body or {}, request id) of one $0.01 call."""
    client = openai.AsyncOpenAI(base_url=gateway.url, api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT)
    clients.append(client)
    try:
        status, error, headers = await cent_call(client)
    except openai.APITimeoutError:
        return 0, {"hung": f"no answer in {CLIENT_TIMEOUT} s"}, ""
    return status, error, headers.get("x-spendgate-request-id", "")


async def _ledger(postgres_url: str, ids: list[str], timeout: float = 60) -> dict[str, int]:
    """How many spend events each request id has, once all are there (or the timeout)."""
    conn = await asyncpg.connect(_dsn(postgres_url), timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await conn.fetch(
                "SELECT event_id, count(*) AS n FROM spend_events WHERE event_id = ANY($1) GROUP BY event_id",
                ids,
            )
            found = {r["event_id"]: int(r["n"]) for r in rows}
            if len(found) == len(set(ids)) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _through_outage(
    mode: str,
    mock: MockServer,
    tmp_path: Path,
    postgres_url: str,
    proxy: FaultProxy,
    clients: list[openai.AsyncOpenAI],
) -> None:
    with _outage_gateway(mock, tmp_path, postgres_url, proxy) as gateway:
        with Admin(gateway.base_url) as admin:
            key = admin.key(max_budget=100)
        before = await asyncio.gather(*(_call(gateway, key, clients) for _ in range(3)))
        assert [s for s, _, _ in before] == [200] * 3, before
        await asyncio.sleep(0.5)  # past the key's cache TTL
        proxy.set_mode(mode)  # type: ignore[arg-type]
        try:
            during = await asyncio.gather(*(_call(gateway, key, clients) for _ in range(8)))
            later = await _call(gateway, key, clients)  # the outage is known: no wait at all
            unknown = await asyncio.gather(*(_call(gateway, f"sk-never-seen-{i}", clients) for i in range(3)))
            with Admin(gateway.base_url) as admin:
                refused = await asyncio.to_thread(admin.http.post, "/key/generate", json={})
        finally:
            proxy.restore()
        # The known key is honoured through the outage (its cache entry is past its TTL).
        assert [s for s, _, _ in [*during, later]] == [200] * 9, [*during, later]
        # A key never seen cannot be checked: 503 in the documented shape, within the wait.
        for status, error, _ in unknown:
            assert status == 503, (status, error)
            assert {k: error[k] for k in UNAVAILABLE} == UNAVAILABLE, error
            assert error["message"]
        # The management API cannot write: 503, nothing changed.
        assert refused.status_code == 503, refused.text
        assert {k: refused.json()["error"][k] for k in UNAVAILABLE} == UNAVAILABLE
        # Billed exactly once each, once the database is back.
        ids = [rid for _, _, rid in [*before, *during, later]]
        assert all(ids) and len(set(ids)) == len(ids)
        assert await _ledger(postgres_url, ids) == dict.fromkeys(ids, 1)
        # And the database is used again: a new key works.
        with Admin(gateway.base_url) as admin:
            fresh = admin.key()
        assert (await _call(gateway, fresh, clients))[0] == 200


async def test_known_keys_work_through_a_database_cut(
    mock: MockServer, tmp_path: Path, postgres_url: str, proxy: FaultProxy, clients: list[openai.AsyncOpenAI]
) -> None:
    await _through_outage("cut", mock, tmp_path, postgres_url, proxy, clients)


async def test_known_keys_work_through_a_database_blackhole(
    mock: MockServer, tmp_path: Path, postgres_url: str, proxy: FaultProxy, clients: list[openai.AsyncOpenAI]
) -> None:
    await _through_outage("blackhole", mock, tmp_path, postgres_url, proxy, clients)


async def test_stale_keys_are_refused_past_the_configured_bound(
    mock: MockServer, tmp_path: Path, postgres_url: str, proxy: FaultProxy, clients: list[openai.AsyncOpenAI]
) -> None:
    with _outage_gateway(mock, tmp_path, postgres_url, proxy, stale_cache_max_seconds=0) as gateway:
        with Admin(gateway.base_url) as admin:
            key = admin.key()
        assert (await _call(gateway, key, clients))[0] == 200
        await asyncio.sleep(0.5)
        proxy.cut()
        try:
            status, error, _ = await _call(gateway, key, clients)
        finally:
            proxy.restore()
        assert status == 503, (status, error)
        assert {k: error[k] for k in UNAVAILABLE} == UNAVAILABLE, error
        assert (await _call(gateway, key, clients))[0] == 200


@pytest.mark.redis
async def test_first_request_after_a_redis_restart_succeeds(
    mock: MockServer, tmp_path: Path, clients: list[openai.AsyncOpenAI]
) -> None:
    with RedisServer(workdir=tmp_path) as redis:
        config = limits_config(
            mock.base_url, tmp_path, redis_url=redis.url, fail_open_budgets=False, fail_open_rate_limits=False
        )
        with GatewayServer(config) as gateway:
            with Admin(gateway.base_url) as admin:
                # A budget and a rate limit: both fail closed, so a Redis error would be a 503.
                key = admin.key(max_budget=100, rpm_limit=10_000)
            warm = await asyncio.gather(*(_call(gateway, key, clients) for _ in range(8)))
            assert [s for s, _, _ in warm] == [200] * 8, warm
            redis.restart()  # every pooled connection is now dead
            first = await _call(gateway, key, clients)
            assert first[0] == 200, first
            burst = await asyncio.gather(*(_call(gateway, key, clients) for _ in range(8)))
            assert [s for s, _, _ in burst] == [200] * 8, burst

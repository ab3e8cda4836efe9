"""Rate limits through the real gateway: parallel slots against a slow mock (and their
release when clients give up), requests per minute with 429 + Retry-After + x-ratelimit-*,
token reservations reconciled to real usage, refusals that take nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
import pytest_asyncio
from gateway_helpers import GatewayServer
from limits_helpers import MESSAGES, Admin, ClientFactory, cent_call, limits_config

from spendgate.core.keys import hash_key
from spendgate.http.credentials import trusted_peer
from spendgate.providers.mock import MockServer


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("ratelimits")
    config = limits_config(mock_server.base_url, tmp, trusted_proxies=["127.0.0.1/32"])
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


@pytest_asyncio.fixture
async def client_for(gw: GatewayServer, mock: MockServer) -> AsyncIterator[ClientFactory]:
    clients: list[openai.AsyncOpenAI] = []

    def make(key: str, timeout: float = 60) -> openai.AsyncOpenAI:
        c = openai.AsyncOpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=timeout)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


def _upstream_gauge(mock: MockServer) -> dict[str, int]:
    gauge: dict[str, int] = mock.stats()["by_key"].get("sk-upstream-parallel", {})
    return gauge


@pytest.mark.asyncio
async def test_max_parallel_requests_holds_against_a_slow_upstream(
    admin: Admin, client_for: ClientFactory, mock: MockServer
) -> None:
    key = admin.key(max_parallel_requests=5)
    client = client_for(key)
    slow = {"x-mock-latency-ms": "300"}
    results = await asyncio.gather(
        *(cent_call(client, model="cent-parallel", extra_headers=slow) for _ in range(30))
    )
    statuses = [r[0] for r in results]
    assert statuses.count(200) >= 5
    assert set(statuses) <= {200, 429}
    for status, error, headers in results:
        if status == 429:
            assert error["type"] == "rate_limit_error" and "5 parallel requests" in str(error["message"])
            assert headers["retry-after"] == "1"
    gauge = _upstream_gauge(mock)
    assert gauge["max_in_flight"] <= 5 and gauge["requests"] == statuses.count(200)


@pytest.mark.asyncio
async def test_cancelled_streams_give_their_slots_back_at_once(
    admin: Admin, client_for: ClientFactory, mock: MockServer, gw: GatewayServer
) -> None:
    key = admin.key(max_parallel_requests=5)
    auth = {"authorization": f"Bearer {key}", "x-mock-chunk-delay-ms": "200"}
    body = {"model": "cent-parallel", "messages": MESSAGES, "max_tokens": 100, "stream": True}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:

        async def give_up() -> None:
            async with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as r:
                assert r.status_code == 200
                async for _ in r.aiter_bytes():
                    break  # the client goes away after the first bytes

        await asyncio.gather(*(give_up() for _ in range(5)))
    # The gateway notices the disconnects and releases the slots (no waiting for a lease).
    deadline = time.monotonic() + 5
    while _upstream_gauge(mock).get("in_flight", 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    client = client_for(key)
    slow = {"x-mock-latency-ms": "200"}
    started = time.monotonic()
    results = await asyncio.gather(
        *(cent_call(client, model="cent-parallel", extra_headers=slow) for _ in range(5))
    )
    assert [r[0] for r in results] == [200] * 5, results
    assert time.monotonic() - started < 3


@pytest.mark.asyncio
async def test_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(
    admin: Admin, client_for: ClientFactory
) -> None:
    key = admin.key(rpm_limit=3)
    client = client_for(key)
    seen = []
    for _ in range(3):
        status, _, headers = await cent_call(client)
        assert status == 200
        seen.append((headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]))
        assert headers["x-ratelimit-reset-requests"]
    assert seen == [("3", "2"), ("3", "1"), ("3", "0")]
    status, error, headers = await cent_call(client)
    assert status == 429
    assert error["type"] == "rate_limit_error"
    assert f"key:{hash_key(key)}" in str(error["message"])
    # Up to 2 windows: early in a window, the full one must also decay (docs/enforcement.md).
    assert 1 <= int(headers["retry-after"]) <= 120
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"]


@pytest.mark.asyncio
async def test_tokens_reconcile_to_real_usage_and_refusals_take_nothing(
    admin: Admin, client_for: ClientFactory
) -> None:
    key = admin.key(tpm_limit=1000)
    client = client_for(key)
    # Reserves 5 prompt + 600 output; the mock really produces 5 output tokens.
    first = await client.chat.completions.with_raw_response.create(
        model="cent", messages=MESSAGES, max_tokens=600, extra_headers={"x-mock-completion-tokens": "5"}
    )
    assert first.http_response.headers["x-ratelimit-remaining-tokens"] == str(1000 - 605)
    # 10 (settled) + 905 > 1000 would fit only if the first call's reservation had been
    # reconciled; with 5 + 900 = 905 more it fits exactly: 10 + 905 = 915.
    ok = await client.chat.completions.with_raw_response.create(
        model="cent", messages=MESSAGES, max_tokens=900, extra_headers={"x-mock-completion-tokens": "1"}
    )
    assert ok.http_response.headers["x-ratelimit-remaining-tokens"] == str(1000 - 10 - 905)
    # Now 10 + 6 used; asking for 5 + 990 is refused and must take nothing.
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="cent", messages=MESSAGES, max_tokens=990)
    assert refused.value.response.headers["x-ratelimit-limit-tokens"] == "1000"
    assert "retry-after" in refused.value.response.headers
    last = await client.chat.completions.with_raw_response.create(
        model="cent", messages=MESSAGES, max_tokens=10
    )
    # 10 + 6 settled, + 15 reserved by this one: the refused request left no trace.
    assert last.http_response.headers["x-ratelimit-remaining-tokens"] == str(1000 - 16 - 15)


def test_end_user_header_is_trusted_only_from_configured_peers() -> None:
    import ipaddress

    nets = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert trusted_peer("10.1.2.3", nets)
    assert trusted_peer("::1", nets)
    assert not trusted_peer("192.168.0.1", nets)
    assert not trusted_peer("not-an-ip", nets)
    assert not trusted_peer("10.1.2.3", [])


@pytest.mark.asyncio
async def test_end_user_header_from_a_trusted_proxy_names_the_customer(
    admin: Admin, client_for: ClientFactory
) -> None:
    admin.post("/customer/new", {"user_id": "proxied-cust", "max_budget": 0.01})
    key = admin.key()
    client = client_for(key)
    header = {"x-spendgate-end-user": "proxied-cust"}
    # The header (from 127.0.0.1, a trusted peer) wins over the body's user.
    assert (await cent_call(client, user="someone", extra_headers=header))[0] == 200
    status, error, _ = await cent_call(client, user="someone", extra_headers=header)
    assert status == 402 and "end_user:proxied-cust" in str(error["message"])

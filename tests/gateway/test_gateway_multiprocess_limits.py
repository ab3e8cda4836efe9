"""Three `spendgate serve` processes sharing Redis (counters) and one PostgreSQL database
(entities and ledger), as a scale-out deployment runs: a key budget raced by 300 requests
spread over the three, and a 20-requests-per-2-seconds limit driven at three times that
rate for 10 s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from cluster_helpers import Cluster, fetch, require_redis, running_cluster
from limits_helpers import CENT, MESSAGES, Admin, cent_call

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module", autouse=True)
def _require_redis() -> None:
    """Checked before the cluster starts (module scoped)."""
    require_redis()


async def _spend(cluster: Cluster, key_id: str, count: int, timeout: float = 20) -> list[int]:
    """The costs of the key's successful calls in the shared ledger, once ``count`` are there
    (the recorders write behind)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await fetch(
            cluster.database_url,
            "SELECT cost_nanos FROM spend_events WHERE api_key = $1 AND status = 'success'",
            key_id,
        )
        if len(rows) >= count or time.monotonic() > deadline:
            return [int(r["cost_nanos"]) for r in rows]
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(
    mock_server: MockServer, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    price = {"input_cost_per_token": "0", "output_cost_per_token": "0.0001"}
    model = {
        "model_name": "cent",
        "litellm_params": {"model": "openai/cent-model", "api_base": mock_server.base_url, **price},
    }
    with running_cluster(
        tmp_path_factory.mktemp("cluster"),
        postgres_url,
        f"sgtest-{uuid.uuid4().hex[:12]}",
        [model],
        rate_limit_window_seconds=2,  # rpm_limit is "per 2 s" here (a test setting)
    ) as cluster:
        yield cluster


@pytest.mark.asyncio
async def test_budget_race_across_three_processes(cluster: Cluster, mock: MockServer) -> None:
    admin = Admin(cluster.urls[0])
    try:
        raw = admin.key(key_alias="cluster-race", max_budget=1.00, budget_duration="1d")
    finally:
        admin.close()
    clients = [
        openai.AsyncOpenAI(base_url=f"{u}/v1", api_key=raw, max_retries=0, timeout=60) for u in cluster.urls
    ]
    try:
        results = await asyncio.gather(*(cent_call(clients[i % 3]) for i in range(300)))
    finally:
        for c in clients:
            await c.close()
    ok = [r for r in results if r[0] == 200]
    assert len(ok) == 100  # $1.00 / $0.01, however the 300 are spread
    for status, error, _ in (r for r in results if r[0] != 200):
        assert status == 402 and error["type"] == "budget_exceeded", (status, error)
        assert f"key:{hash_key(raw)}" in str(error["message"])
    costs = await _spend(cluster, hash_key(raw), 100)
    assert len(costs) == 100 and sum(costs) == 100 * CENT


@pytest.mark.asyncio
async def test_rate_limit_across_three_processes_at_three_times_the_rate(
    cluster: Cluster, mock: MockServer
) -> None:
    admin = Admin(cluster.urls[0])
    try:
        raw = admin.key(key_alias="cluster-rpm", rpm_limit=20)  # 20 per 2 s in this cluster
    finally:
        admin.close()
    # Plain httpx clients for the drive: the SDK's own overhead would skew the send times
    # on a loaded machine (the SDK is used for the budget race above).
    auth = {"authorization": f"Bearer {raw}"}
    body = {"model": "cent", "messages": MESSAGES, "max_tokens": 1}
    clients = [httpx.AsyncClient(base_url=u, headers=auth, timeout=30) for u in cluster.urls]
    for c in clients:  # warm each process's key cache and connection
        assert (await c.get("/v1/models")).status_code == 200
    rate, seconds = 30, 10  # 3 × (20 / 2 s)
    # Start on a window boundary (windows are epoch-aligned): 10 s is then exactly five
    # windows, and the sliding window's phase does not add its own ± one-window error.
    await asyncio.sleep(2 - time.time() % 2)
    start = time.monotonic()

    async def one(i: int) -> tuple[int, Any, float]:
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent = time.monotonic() - start
        r = await clients[i % 3].post("/v1/chat/completions", json=body)
        return r.status_code, r.headers, sent

    try:
        results = await asyncio.gather(*(one(i) for i in range(rate * seconds)))
    finally:
        for c in clients:
            await c.aclose()
    accepted = sum(1 for status, _, _ in results if status == 200)
    expected = 20 * seconds // 2
    per_second = [0] * (seconds + 2)
    for status, _, sent in results:
        if status == 200:
            per_second[min(int(sent), seconds + 1)] += 1
    assert abs(accepted - expected) <= expected * 0.05, (accepted, per_second, results[-1][2])
    for status, headers, _ in results:
        if status != 200:
            assert status == 429
            assert int(headers["retry-after"]) >= 1
            assert headers["x-ratelimit-limit-requests"] == "20"

"""Three `spendgate serve` processes sharing Redis (counters) and one PostgreSQL database
(entities and ledger), as a scale-out deployment runs: a key budget raced by 300 requests
spread over the three, and a 20-requests-per-2-seconds limit driven at three times that
rate for 10 s."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import yaml
from gateway_helpers import MASTER_KEY, free_port
from limits_helpers import CENT, MESSAGES, Admin, cent_call
from sqlalchemy.engine import make_url

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer

REDIS = ("127.0.0.1", 6379)


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _require_redis() -> None:
    """These tests need the real Redis: unreachable is a failure, never a silent skip."""
    if _redis_up():
        return
    if os.environ.get("SPENDGATE_TEST_SKIP_REDIS") == "1":
        pytest.skip("SPENDGATE_TEST_SKIP_REDIS=1")
    pytest.fail(f"Redis is not reachable at {REDIS[0]}:{REDIS[1]}; start it (or SPENDGATE_TEST_SKIP_REDIS=1)")


class Cluster:
    def __init__(self, urls: list[str], database_url: str, prefix: str) -> None:
        self.urls = urls
        self.database_url = database_url
        self.prefix = prefix

    async def spend(self, key_id: str, count: int, timeout: float = 20) -> list[int]:
        """The costs of the key's successful calls in the shared ledger, once ``count`` are
        there (the recorders write behind)."""
        dsn = make_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            deadline = time.monotonic() + timeout
            while True:
                rows = await conn.fetch(
                    "SELECT cost_nanos FROM spend_events WHERE api_key = $1 AND status = 'success'", key_id
                )
                if len(rows) >= count or time.monotonic() > deadline:
                    return [int(r["cost_nanos"]) for r in rows]
                await asyncio.sleep(0.1)
        finally:
            await conn.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/readiness", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway did not start: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def cluster(
    mock_server: MockServer, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    prefix = f"sgtest-{uuid.uuid4().hex[:12]}"
    price = {"input_cost_per_token": "0", "output_cost_per_token": "0.0001"}
    raw: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "cent",
                "litellm_params": {"model": "openai/cent-model", "api_base": mock_server.base_url, **price},
            }
        ],
        "general_settings": {
            "master_key": MASTER_KEY,
            "database_url": postgres_url,
            "journal_dir": str(tmp / "journal"),
            "redis_url": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "enforcement_key_prefix": prefix,
            "rate_limit_window_seconds": 2,  # rpm_limit is "per 2 s" here (a test setting)
            "upstream_http_client": "httpx",
        },
    }
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    spendgate = Path(sys.executable).with_name("spendgate")
    try:
        for i in range(3):
            port = free_port()
            log = tmp / f"gateway-{i}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [
                        str(spendgate),
                        "serve",
                        "--config",
                        str(config),
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc, log)
            urls.append(url)
        yield Cluster(urls, postgres_url, prefix)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        _clear_redis(prefix)


def _clear_redis(prefix: str) -> None:
    import redis

    client = redis.Redis(host=REDIS[0], port=REDIS[1])
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


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
    costs = await cluster.spend(hash_key(raw), 100)
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

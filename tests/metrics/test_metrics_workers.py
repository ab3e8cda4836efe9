"""``spendgate serve --workers 2`` as real processes sharing Redis counters: every worker's
counters add up in one scrape (prometheus-client's multiprocess mode), equal to the ledger;
the team budget gauge, read from the shared counters by whichever worker answers, is one
series equal to the budget less the ledger's spend (not counted once per worker); and the
directory the workers wrote their values to is gone after the server stops."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, free_port, serve, serve_config
from metrics_helpers import assert_finite, ledger_sums, promtool_check, samples, total

from spendgate.metrics import NANOS_PER_USD
from spendgate.providers.mock import MockServer

pytestmark = [pytest.mark.redis]

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _scrape(port: int) -> str:
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert answer.status_code == 200
    return answer.text


async def _drive(url: str, key: str, count: int) -> None:
    # Fresh connections in parallel: the kernel spreads them over both workers' accepts.
    async def one(i: int) -> None:
        async with openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=30) as client:
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"worker test {i}"}]
            )

    gate = asyncio.Semaphore(16)

    async def bounded(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(bounded(i) for i in range(count)))


def _worker_prefixes(db: Path) -> set[str]:
    """The request ids' per-process prefixes (``req_<10 hex>``): one per worker that served."""
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT event_id FROM spend_events")]
    return {m.group(1) for i in ids if (m := re.match(r"(req_[0-9a-f]{10})", i))}


def _multiproc_dirs(pid: int) -> list[str]:
    """``PROMETHEUS_MULTIPROC_DIR`` as the workers (children of ``pid``) see it."""
    found = []
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
                continue
            environ = (child / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                found.append(item.split(b"=", 1)[1].decode())
    return found


def test_two_workers_add_up(mock_server: MockServer, tmp_path: Path) -> None:
    mock_server.reset()
    prefix = f"sgm{uuid.uuid4().hex[:8]}"
    config = serve_config(tmp_path, mock_server.base_url, redis_url=REDIS_URL, enforcement_key_prefix=prefix)
    port = free_port()
    env_before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    proc = serve(config, port, tmp_path / "serve.log", "--workers", "2")
    try:
        dirs = _multiproc_dirs(proc.pid)
        assert dirs and len(set(dirs)) == 1, dirs
        admin = {"authorization": f"Bearer {MASTER_KEY}"}
        made = httpx.post(
            f"http://127.0.0.1:{port}/team/new",
            json={"team_id": "workers-team", "max_budget": 100, "budget_duration": "1d"},
            headers=admin,
        )
        assert made.status_code == 200, made.text
        key = httpx.post(
            f"http://127.0.0.1:{port}/key/generate", json={"team_id": "workers-team"}, headers=admin
        )
        assert key.status_code == 200, key.text
        served: set[str] = set()
        driven = 0
        for _ in range(10):  # until both workers have served some (almost always the first round)
            asyncio.run(_drive(f"http://127.0.0.1:{port}/v1", key.json()["key"], 100))
            driven += 100
            _wait_ledger(tmp_path / "spendgate.db", driven)
            served = _worker_prefixes(tmp_path / "spendgate.db")
            if len(served) >= 2:
                break
        assert len(served) == 2, served
        events, nanos, input_tokens, output_tokens = ledger_sums(tmp_path / "spendgate.db")
        assert events == driven
        # Each worker flushes its observations into its files every second: then any worker
        # may answer a scrape, and each one must show the sum over both.
        time.sleep(1.5)
        for _ in range(4):
            text = _scrape(port)
            assert total(text, "litellm_requests_metric_total") == events
            assert round(total(text, "spendgate_spend_usd_total") * NANOS_PER_USD) == nanos
            assert total(text, "litellm_input_tokens_metric_total") == input_tokens
            assert total(text, "litellm_output_tokens_metric_total") == output_tokens
            remaining = samples(text, "litellm_remaining_team_budget_metric")
            assert len(remaining) == 1 and remaining[0].labels["team"] == "workers-team"
            assert remaining[0].value == pytest.approx(100 - nanos / NANOS_PER_USD, abs=1e-9)
        promtool_check(text)
        assert_finite(text)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert not Path(dirs[0]).exists(), "the multiprocess directory outlived the server"
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") == env_before


def _wait_ledger(db: Path, count: int) -> None:
    """Wait until the recorders (one per worker, writing behind) have written ``count`` events."""
    deadline = time.monotonic() + 30
    while ledger_sums(db)[0] < count and time.monotonic() < deadline:
        time.sleep(0.1)

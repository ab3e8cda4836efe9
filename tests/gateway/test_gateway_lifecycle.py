"""Start and stop: a graceful stop flushes every recorded call; processes sharing a
journal directory take separate slots; readiness reports the database and Redis."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config

from spendgate.providers.mock import MockServer

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_graceful_stop_flushes_the_recorder(mock: MockServer, tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    config = make_config(mock.base_url, db, tmp_path / "journal")
    first = GatewayServer(config).start()
    second = GatewayServer(config).start()  # same journal directory: takes the next slot
    try:
        with openai.OpenAI(base_url=first.url, api_key=MASTER_KEY, max_retries=0) as client:
            for _ in range(20):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=1
                )
    finally:
        first.stop()  # right after the calls: before the recorder's first batch is due
        second.stop()
    assert len(Ledger(db).rows()) == 20
    assert sorted(p.name for p in (tmp_path / "journal").iterdir()) == ["worker-0", "worker-1"]


@pytest.mark.redis
def test_readiness_reports_database_and_redis(mock: MockServer, tmp_path: Path) -> None:
    config = make_config(mock.base_url, tmp_path / "db.sqlite", tmp_path / "journal",
                         general_settings={"redis_url": REDIS_URL})  # fmt: skip
    server = GatewayServer(config).start()
    try:
        report = httpx.get(f"{server.base_url}/health/readiness").json()
    finally:
        server.stop()
    assert report["status"] == "healthy"
    assert report["database"] == "connected" and report["redis"] == "connected"

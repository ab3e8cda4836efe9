"""Several ``spendgate serve`` processes on one config, sharing PostgreSQL and Redis, as a
scale-out deployment runs them: the processes, the Redis they need (and its clean-up) and
the shared ledger, written once for every cluster test (imported as a plain module).

Redis comes from ``$SPENDGATE_TEST_REDIS_URL`` (default db 4); unreachable is a failure
unless ``SPENDGATE_TEST_SKIP_REDIS=1``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import yaml
from gateway_helpers import MASTER_KEY, free_port, serve
from sqlalchemy.engine import make_url

__all__ = ["REDIS_URL", "Cluster", "clear_redis", "fetch", "require_redis", "running_cluster"]

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")


def _redis_up() -> bool:
    url = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=0.5):
            return True
    except OSError:
        return False


def require_redis() -> None:
    """Fail (never skip silently) unless Redis answers; skip only on SPENDGATE_TEST_SKIP_REDIS=1."""
    if _redis_up():
        return
    if os.environ.get("SPENDGATE_TEST_SKIP_REDIS") == "1":
        pytest.skip("SPENDGATE_TEST_SKIP_REDIS=1")
    pytest.fail(f"Redis is not reachable at {REDIS_URL}; start it (or SPENDGATE_TEST_SKIP_REDIS=1)")


def clear_redis(prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (an instance's counters made cold)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Cluster:
    """``spendgate serve`` processes on one config; any one can be killed and restarted."""

    def __init__(self, config: Path, tmp: Path, database_url: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env
        self.tmp = tmp
        self.database_url = database_url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self._starts = 0

    def start(self, index: int | None = None) -> None:
        """Start a process (a new one, or again in slot ``index``) and wait until it is ready."""
        port = free_port()
        self._starts += 1
        log = self.tmp / f"gateway-{self._starts}.log"
        proc = serve(
            self.config, port, log, "--log-level", "warning", ready="/health/readiness", env=self.env
        )
        url = f"http://127.0.0.1:{port}"
        if index is None:
            self.procs.append(proc)
            self.urls.append(url)
        else:
            self.procs[index], self.urls[index] = proc, url

    def index_of(self, pid: int) -> int:
        """The slot of the process with this pid."""
        return [p.pid for p in self.procs].index(pid)

    def stop(self) -> None:
        """SIGTERM every running process at once, then wait for each (SIGKILL after 30 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def running_cluster(
    tmp: Path,
    database_url: str,
    prefix: str,
    model_list: list[dict[str, Any]],
    size: int = 3,
    env: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
    **general: Any,
) -> Iterator[Cluster]:
    """``size`` processes on one config (the master key, ``database_url``, Redis with the
    key prefix ``prefix``, ``general`` on top, ``environment`` as the config's
    ``environment_variables``); ``env`` added to each process's environment; stopped, and
    their Redis keys deleted, after."""
    settings: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "database_url": database_url,
        "journal_dir": str(tmp / "journal"),
        "redis_url": REDIS_URL,
        "enforcement_key_prefix": prefix,
        "upstream_http_client": "httpx",
        **general,
    }
    config = tmp / "config.yaml"
    document: dict[str, Any] = {"model_list": model_list, "general_settings": settings}
    if environment:
        document["environment_variables"] = environment
    config.write_text(yaml.safe_dump(document))
    cluster = Cluster(config, tmp, database_url, env)
    try:
        for _ in range(size):
            cluster.start()
        yield cluster
    finally:
        cluster.stop()
        clear_redis(prefix)


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one query on the cluster's PostgreSQL database (its own connection)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()

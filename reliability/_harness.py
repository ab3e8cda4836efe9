"""What every reliability script needs, so each script reads as its scenario and criterion.

The scripts drive real processes (the mock provider and the gateway, started as
``spendgate mock-provider`` and ``spendgate serve`` are), real databases and a real Redis,
over loopback only, and every loop they run is bounded by a count or a deadline. Pieces:

* :class:`Stack`: a temporary directory and the processes started in it, all stopped on exit;
  :meth:`Stack.mock` starts the mock provider, :meth:`Stack.gateway` writes a config and
  returns a :class:`Gateway` (start, SIGKILL, graceful stop, restart, RSS);
* :func:`postgres_database`: a fresh PostgreSQL database, dropped afterwards;
* :func:`create_key`: a virtual key through the management API;
* :func:`run_load`: closed-loop load with bounded concurrency, recording each request's id
  (``x-spendgate-request-id``), status and latency;
* :func:`ledger_counts`: how many ledger rows (``spend_events``) each request id has;
* :func:`finish`: print the summary as JSON and turn the criterion into an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import aiohttp
import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from spendgate.stores.database import create_engine

__all__ = [
    "CHAT",
    "MASTER_KEY",
    "PG_URL",
    "Gateway",
    "LoadResult",
    "Outcome",
    "Stack",
    "arguments",
    "check_ledger",
    "create_key",
    "finish",
    "free_port",
    "ledger_counts",
    "postgres_database",
    "run_load",
    "wait_http",
]

MASTER_KEY = "sk-reliability-master"
CHAT: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hello, how are you?"}],
    "max_tokens": 5,
}
PG_URL = os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUEST_ID = "x-spendgate-request-id"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers (any status); fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _spendgate(*args: str) -> list[str]:
    return [sys.executable, "-c", "from spendgate.cli import main; main()", *args]


@dataclass
class Gateway:
    """One gateway process (one uvicorn worker, so the process started is the one serving)."""

    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the gateway is not running"
        return self.proc.pid

    def start(self, timeout: float = 90.0) -> Gateway:
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            _spendgate(
                "serve", "--config", str(self.config), "--port", str(self.port), "--log-level", "warning"
            ),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/health/liveliness", timeout, self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye (what a crash or the OOM killer does)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait (a graceful stop flushes the ledger); SIGKILL after ``timeout``."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
            code = self.proc.returncode
        self._close_log()
        return code

    def rss_kb(self) -> int:
        """The resident set size (``VmRSS`` in ``/proc/<pid>/status``), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class Stack:
    """A temporary directory and the processes started in it; everything stops on exit.

    The directory (configs, SQLite ledger, journals, process logs) is removed unless the
    script failed or ``SPENDGATE_RELIABILITY_KEEP=1``, so a failure can be read afterwards.
    """

    def __init__(self, name: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"spendgate-{name}-"))
        self.gateways: list[Gateway] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self.mock_url = ""

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        for gateway in self.gateways:
            gateway.stop(timeout=30)
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        if exc_type is None and os.environ.get("SPENDGATE_RELIABILITY_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"logs and data kept in {self.dir}", file=sys.stderr)

    def process(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start a helper process (output to ``<dir>/<name>.log``), stopped on exit."""
        with (self.dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._procs.append(proc)
        return proc

    def mock(self, *args: str) -> str:
        """Start the mock provider (extra CLI options in ``args``); returns its ``/v1`` URL."""
        port = free_port()
        proc = self.process("mock", _spendgate("mock-provider", "--port", str(port), *args))
        wait_http(f"http://127.0.0.1:{port}/mock/stats", 60, proc)
        self.mock_url = f"http://127.0.0.1:{port}/v1"
        return self.mock_url

    def gateway(
        self,
        database_url: str | None = None,
        *,
        name: str = "gateway",
        settings: Mapping[str, Any] | None = None,
        start: bool = True,
    ) -> Gateway:
        """Write a config (every model on the mock provider) and start a gateway on it.

        ``database_url`` defaults to a SQLite file in the stack's directory; ``settings``
        are added to ``general_settings`` (e.g. ``redis_url``).
        """
        if not self.mock_url:
            raise RuntimeError("start the mock provider first")
        db = database_url or f"sqlite+aiosqlite:///{self.dir / (name + '.db')}"
        general = {
            "master_key": MASTER_KEY,
            "database_url": db,
            "journal_dir": str(self.dir / f"{name}-journal"),
            **(settings or {}),
        }
        models = [
            {"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": self.mock_url}}
            for m in ("gpt-4o", "gpt-4o-mini")
        ]
        config = self.dir / f"{name}.yaml"
        config.write_text(json.dumps({"model_list": models, "general_settings": general}))  # JSON is YAML
        gateway = Gateway(config=config, port=free_port(), log=self.dir / f"{name}.log")
        self.gateways.append(gateway)
        return gateway.start() if start else gateway

    def database_url(self, name: str = "gateway") -> str:
        """The SQLite URL :meth:`gateway` uses by default for ``name``."""
        return f"sqlite+aiosqlite:///{self.dir / (name + '.db')}"


def _pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def postgres_database(prefix: str = "spendgate_rel") -> Iterator[str]:
    """A fresh, empty PostgreSQL database on ``$SPENDGATE_TEST_POSTGRES_URL``'s server.

    The gateway migrates it at start-up (``run_migrations``); it is dropped on exit.
    """
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(_pg_dsn(PG_URL), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def sync(sql: str) -> None:  # in a thread of its own: callable with or without a running loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run(sql)).result()

    sync(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        sync(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def create_key(base_url: str, **fields: Any) -> str:
    """A new virtual key (``/key/generate`` with the master key); returns the raw key."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url}/key/generate",
            json=fields,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=aiohttp.ClientTimeout(total=60),
        ) as resp,
    ):
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"/key/generate answered {resp.status}: {body}")
        return str(body["key"])


class Outcome(NamedTuple):
    """One request. ``status`` 0: no answer (refused, reset, timed out; ``error`` says which).

    ``started`` is when it was sent, in seconds on the :func:`time.monotonic` clock.
    """

    request_id: str
    status: int
    started: float
    latency_ms: float
    error: str


@dataclass
class LoadResult:
    """What a load run saw. ``outcomes`` is empty when the run was not asked to record."""

    sent: int = 0
    elapsed_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: list[Outcome] = field(default_factory=list)
    max_latency_ms: float = 0.0

    def acknowledged(self) -> list[str]:
        """The request ids of every 200: the calls the gateway acknowledged."""
        return [o.request_id for o in self.outcomes if o.status == 200]

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "elapsed_s": round(self.elapsed_s, 1),
            "rps": round(self.sent / self.elapsed_s) if self.elapsed_s else 0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors.most_common(5)),
            "max_latency_ms": round(self.max_latency_ms),
        }


async def run_load(
    url: str,
    key: str,
    *,
    total: int | None = None,
    duration: float | None = None,
    concurrency: int = 16,
    body: Mapping[str, Any] = CHAT,
    path: str = "/v1/chat/completions",
    record: bool = True,
    stop: asyncio.Event | None = None,
    request_timeout: float = 60.0,
    rate: float | None = None,
) -> LoadResult:
    """Closed-loop load: ``concurrency`` workers each send one request after another
    (with ``rate``, paced: request *i* is not sent before ``i / rate`` seconds from the start,
    so the load stays below what the machine sustains instead of saturating it).

    Stops after ``total`` requests, after ``duration`` seconds, or when ``stop`` is set,
    whichever comes first (at least one bound is required, so every run ends). A request
    that gets no answer (connection refused or reset, timeout) is recorded with status 0;
    its worker then pauses 200 ms, so a gateway that is down is not spun against.
    """
    if total is None and duration is None and stop is None:
        raise ValueError("give run_load a total, a duration or a stop event")
    result = LoadResult()
    payload = json.dumps(body).encode()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    target = url + path
    start = time.monotonic()
    deadline = start + duration if duration is not None else float("inf")
    timeout = aiohttp.ClientTimeout(total=request_timeout)

    def more() -> bool:
        return (
            (total is None or result.sent < total)
            and time.monotonic() < deadline
            and not (stop is not None and stop.is_set())
        )

    async def worker(session: aiohttp.ClientSession) -> None:
        while more():
            index = result.sent
            result.sent += 1
            if rate is not None:
                await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            t0 = time.monotonic()
            rid, status, error = "", 0, ""
            try:
                async with session.post(target, data=payload, headers=headers, timeout=timeout) as resp:
                    await resp.read()
                    rid, status = resp.headers.get(REQUEST_ID, ""), resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = type(exc).__name__
            latency = (time.monotonic() - t0) * 1000
            result.statuses[status] += 1
            result.max_latency_ms = max(result.max_latency_ms, latency)
            if error:
                result.errors[error] += 1
            if record:
                result.outcomes.append(Outcome(rid, status, t0, latency, error))
            if status == 0:
                await asyncio.sleep(0.2)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    result.elapsed_s = time.monotonic() - start
    return result


async def ledger_counts(database_url: str) -> Counter[str]:
    """Ledger rows per event id (``spend_events``): 1 for each billed request, never 2."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT event_id, count(*) FROM spend_events GROUP BY event_id"))
            return Counter({str(event_id): int(n) for event_id, n in rows})
    finally:
        await engine.dispose()


def check_ledger(acknowledged: list[str], counts: Counter[str]) -> dict[str, int]:
    """Acknowledged ids missing from the ledger, and ids with more than one row."""
    return {
        "acknowledged": len(acknowledged),
        "ledger_rows": sum(counts.values()),
        "missing": sum(1 for rid in acknowledged if counts[rid] == 0),
        "doubled": sum(1 for n in counts.values() if n > 1),
    }


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A script's argument parser, its docstring as the help text (kept as written)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def finish(name: str, summary: Mapping[str, Any], failures: list[str]) -> int:
    """Print the summary (JSON, one line per field) and the verdict; the exit code."""
    print(json.dumps({"script": name, **summary, "failures": failures}, indent=2, default=str))
    print(f"{name}: {'FAIL' if failures else 'PASS'}" + (" — " + "; ".join(failures) if failures else ""))
    return 1 if failures else 0

"""Run the gateway on a real port in-process, and read its ledger (imported as a plain module)."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from spendgate.config import GatewayConfig, parse_config
from spendgate.server import build_app

MASTER_KEY = "sk-master-test"


class GatewayServer:
    """The gateway app served by uvicorn in a thread (like ``spendgate serve``)."""

    def __init__(self, config: GatewayConfig, **app_options: Any) -> None:
        self.app = build_app(config, **app_options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/v1"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False, ws="none")
        )
        self._thread = threading.Thread(target=self._run, name=f"gateway:{self.port}", daemon=True)

    def _run(self) -> None:
        factory = self._server.config.get_loop_factory()
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> GatewayServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(mock_base_url: str, db_path: Path, journal: Path, **overrides: Any) -> GatewayConfig:
    """The test config: models on the mock provider, a dead upstream for retries."""
    dead = f"http://127.0.0.1:{free_port()}"
    raw: dict[str, Any] = {
        "model_list": [
            {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": mock_base_url}},
            {
                "model_name": "claude-sonnet-4-6",
                "litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_base": mock_base_url},
            },
            {
                "model_name": "text-embedding-3-small",
                "litellm_params": {"model": "openai/text-embedding-3-small", "api_base": mock_base_url},
            },
            {
                "model_name": "gpt-image-1",
                "litellm_params": {"model": "openai/gpt-image-1", "api_base": mock_base_url},
            },
            {
                "model_name": "whisper-1",
                "litellm_params": {"model": "openai/whisper-1", "api_base": mock_base_url},
            },
            {"model_name": "tts-1", "litellm_params": {"model": "openai/tts-1", "api_base": mock_base_url}},
            {
                "model_name": "my-llama",
                "litellm_params": {
                    "model": "hosted_vllm/my-llama",
                    "api_base": mock_base_url,
                    "input_cost_per_token": "0.000001",
                    "output_cost_per_token": "0.000002",
                },
            },
            # Two deployments; the cheaper one is down: lowest-cost tries it first.
            {
                "model_name": "flaky",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": dead,
                    "input_cost_per_token": "0.0000001",
                },
                "model_info": {"id": "flaky-dead"},
            },
            {
                "model_name": "flaky",
                "litellm_params": {"model": "openai/gpt-4o", "api_base": mock_base_url},
                "model_info": {"id": "flaky-alive"},
            },
            {
                "model_name": "broken",
                "litellm_params": {"model": "openai/gpt-4o", "api_base": dead},
                "model_info": {"id": "broken-dead"},
            },
            {
                "model_name": "slow",
                "litellm_params": {"model": "openai/gpt-4o", "api_base": mock_base_url, "timeout": 0.3},
            },
        ],
        "general_settings": {
            "master_key": MASTER_KEY,
            "database_url": f"sqlite+aiosqlite:///{db_path}",
            "journal_dir": str(journal),
            "forward_client_headers_to_llm_api": True,
            "max_request_size_mb": 1,
            # SPENDGATE_TEST_UPSTREAM_CLIENT=aiohttp (or httpx) runs the suite on another client
            "upstream_http_client": os.environ.get("SPENDGATE_TEST_UPSTREAM_CLIENT", "aiohttp"),
        },
        "router_settings": {
            "routing_strategy": "lowest-cost",
            "num_retries": 1,
            "retry_after": 0.001,
            "fallbacks": [{"broken": ["gpt-4o"]}],
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            raw[section] = {**raw.get(section, {}), **values}
        else:
            raw[section] = values
    return parse_config(raw, environ={})


class Ledger:
    """Reads spend events straight from the gateway's SQLite file."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def rows(self, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db_path) as conn:
            conn.row_factory = sqlite3.Row
            query = f"SELECT * FROM spend_events WHERE {where} ORDER BY occurred_at, event_id"  # noqa: S608
            return [dict(r) for r in conn.execute(query, params)]

    def wait(
        self, count: int, where: str = "1=1", params: tuple[Any, ...] = (), timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` rows match (the recorder writes behind), then return them."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(where, params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def operation(self, request_id: str, count: int) -> list[dict[str, Any]]:
        return self.wait(count, "operation_id = ?", (request_id,))


def serve_config(tmp_path: Path, mock_base_url: str, **general: Any) -> Path:
    """A config file for ``spendgate serve``: gpt-4o on the mock, a SQLite ledger in ``tmp_path``."""
    config = tmp_path / "config.yaml"
    deployment = {
        "model_name": "gpt-4o",
        "litellm_params": {"model": "openai/gpt-4o", "api_base": mock_base_url},
    }
    settings = {
        "master_key": MASTER_KEY,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'spendgate.db'}",
        "journal_dir": str(tmp_path / "journal"),
        **general,
    }
    config.write_text(yaml.safe_dump({"model_list": [deployment], "general_settings": settings}))
    return config


def wait_answering(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200 while ``proc`` (writing to ``log``) keeps running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{url} did not answer: {log.read_text()[-3000:]}")


def serve(
    config: Path,
    port: int,
    log: Path,
    *options: str,
    ready: str = "/health/liveliness",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``spendgate serve`` as a real process (output to ``log``), returned once ``ready``
    answers (``/health/readiness`` waits for its database and Redis too); ``env`` is added
    to the environment."""
    spendgate = Path(sys.executable).with_name("spendgate")
    args = [str(spendgate), "serve", "--config", str(config), "--port", str(port), *options]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    wait_answering(f"http://127.0.0.1:{port}{ready}", proc, log)
    return proc

"""The in-process runner and the ``spendgate mock-provider`` command."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import typer
from typer.testing import CliRunner

from spendgate.cli import mock as mock_cli
from spendgate.providers.mock import run_mock_provider


def test_stop_ends_hanging_requests_quickly() -> None:
    outcome: list[object] = []
    with run_mock_provider() as server:
        url = f"{server.url}/chat/completions"

        def hang() -> None:
            try:
                outcome.append(
                    httpx.post(
                        url, json={"model": "m", "messages": []}, headers={"x-mock-hang": "1"}, timeout=30
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=hang)
        thread.start()
        while server.stats()["in_flight"] == 0:
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 3
    thread.join(5)
    [result] = outcome
    assert isinstance(result, httpx.Response | httpx.HTTPError)
    if isinstance(result, httpx.Response):
        assert result.status_code == 503


def test_two_servers_are_independent() -> None:
    with run_mock_provider() as a, run_mock_provider(default_completion_tokens=3) as b:
        assert a.port != b.port
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        assert httpx.post(f"{b.url}/chat/completions", json=body).json()["usage"]["completion_tokens"] == 3
        assert a.stats()["requests"] == 0 and b.stats()["requests"] == 1


def test_cli_help_lists_the_options() -> None:
    app = typer.Typer()
    mock_cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `mock-provider` a subcommand
    result = CliRunner().invoke(app, ["mock-provider", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--latency-ms", "--workers", "--batch-polls"):
        assert option in result.output


def test_cli_serves(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = Path(sys.executable).with_name("spendgate")
    process = subprocess.Popen(
        [str(command), "mock-provider", "--port", str(port), "--latency-ms", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mock/health").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mock provider did not start"
                time.sleep(0.1)
        body = {"model": "m", "messages": [{"role": "user", "content": "abcd"}], "max_tokens": 2}
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body).json()
        assert reply["usage"]["prompt_tokens"] == 5 and reply["usage"]["completion_tokens"] == 2
    finally:
        process.terminate()
        assert process.wait(10) in (0, -15)  # uvicorn re-raises the SIGTERM it handled

"""The first run (issue #17 item 7): what ``make run PORT=… MOCK_PORT=…`` runs — ``spendgate
serve`` on examples/config.yaml with ``--port`` and ``--mock-provider`` on ports other than
the defaults — starts offline, answers through the mock on the port given (the example's
model URLs follow ``--mock-provider``), and logs a short start: no warning about the
example's own keys, the migrations in one line."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from spendgate.cli import _register, app

ROOT = Path(__file__).resolve().parents[2]
_register()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_the_example_on_other_ports_offline(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "config.yaml", tmp_path / "config.yaml")
    port, mock_port = _free_port(), _free_port()
    spendgate = Path(sys.executable).with_name("spendgate")
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_MOCK_URL"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(spendgate),
                "serve",
                "--config",
                "config.yaml",
                "--port",
                str(port),
                "--mock-provider",
                str(mock_port),
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 240  # a loaded CI machine starts slowly (catalogue, migrations)
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    headers={"authorization": "Bearer sk-spendgate-demo"},
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]},
                    timeout=10,
                )
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, log.read_text()
        assert answer.status_code == 200, answer.text
        assert float(answer.headers["x-spendgate-response-cost"]) > 0
        # The call went to the mock on MOCK_PORT (the example's URLs followed it).
        stats = httpx.get(f"http://127.0.0.1:{mock_port}/mock/stats", timeout=5).json()
        assert stats["by_path"] == {"/v1/chat/completions": 1}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    text = log.read_text()
    assert "WARNING" not in text and "warning" not in text.lower(), text
    assert "alembic" not in text, text
    assert len(re.findall(r"schema (migrated|up to date)", text)) == 1, text
    assert f"mock provider on http://127.0.0.1:{mock_port}/v1" in text
    # The banner names the interpreter to run its Python snippet with.
    assert re.search(r"\S*python\S* -c \"import openai", text), text


@pytest.mark.parametrize("path", ["./spendgate.db", "/var/tmp/spendgate.db"])
def test_a_file_path_as_database_url_is_one_line_with_the_fix(path: str, tmp_path: Path) -> None:
    fix = f"sqlite+aiosqlite:///{path}"
    status = CliRunner().invoke(app, ["db", "status", "--database-url", path], terminal_width=400)
    assert status.exit_code == 2
    assert "Traceback" not in status.output and fix in status.output
    assert len(status.output.strip().splitlines()) == 1, status.output
    config = tmp_path / "config.yaml"
    config.write_text(f"general_settings:\n  database_url: {path}\n")
    spendgate = Path(sys.executable).with_name("spendgate")
    serve = subprocess.run(
        [str(spendgate), "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert serve.returncode == 2
    lines = serve.stderr.strip().splitlines()
    assert len(lines) == 1 and "general_settings.database_url" in lines[0] and fix in lines[0], serve.stderr

"""``spendgate alerts test|list``: ``test`` asks a real gateway (uvicorn on a port) to send a
test alert, which its sender job delivers to a real HTTP receiver; ``list`` then reads the
alert and its delivery from the database."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from spendgate.alerts import Alert, record_alert
from spendgate.cli import _admin_client, _output, _register, app
from spendgate.config import parse_config
from spendgate.server import build_app
from spendgate.stores.database import create_engine

runner = CliRunner()
_register()
MASTER = "sk-master-cli-alerts"


class _Hook(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).count += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Gateway:
    def __init__(self, config: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(build_app(config), log_config=None, access_log=False))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])))

    def __enter__(self) -> _Gateway:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"count": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_output.console, "_width", 300)
    monkeypatch.setattr(_admin_client, "transport", None)
    monkeypatch.delenv("SPENDGATE_MASTER_KEY", raising=False)


def _config(tmp_path: Path, hook_url: str | None) -> Any:
    general: dict[str, Any] = {
        "master_key": MASTER,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "journal_dir": str(tmp_path / "journal"),
    }
    env = {}
    if hook_url is not None:
        general |= {"alerting": ["webhook"], "alerting_args": {"send_interval_seconds": 0.2}}
        env["WEBHOOK_URL"] = hook_url
    return parse_config({"general_settings": general, "environment_variables": env}, environ={})


def _alerts(*args: str) -> Result:
    return runner.invoke(app, ["alerts", *args])


def test_test_then_list(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    hook_url, handler = hook
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    with _Gateway(_config(tmp_path, hook_url)) as gateway:
        refused = _alerts("test", "--url", gateway.url, "--master-key", "sk-wrong")
        sent = _alerts("test", "--url", gateway.url, "--master-key", MASTER, "--message", "ping", "--json")
        deadline = time.monotonic() + 15
        while True:  # delivered, and the attempt recorded (just after the receiver answered)
            listed = _alerts("list", "--json", "--database-url", database)
            channels = [
                c for a in json.loads(listed.stdout or '{"alerts": []}')["alerts"] for c in a["channels"]
            ]
            if channels and channels[0]["status"] == "sent":
                break
            assert time.monotonic() < deadline, "the test alert was not delivered"
            time.sleep(0.05)
        table = _alerts("list", "--database-url", database)
    assert refused.exit_code != 0 and "401" in refused.output
    assert sent.exit_code == 0, sent.output
    answer = json.loads(sent.stdout)
    assert answer["channels"] == ["webhook"] and answer["enqueued"] == 1
    assert listed.exit_code == 0, listed.output
    [alert] = json.loads(listed.stdout)["alerts"]
    assert (alert["id"], alert["kind"], alert["message"]) == (answer["alert_id"], "test", "ping")
    assert alert["channels"][0]["channel"] == "webhook" and alert["channels"][0]["status"] == "sent"
    assert "webhook: sent" in table.output and "test" in table.output
    assert handler.count == 1


def test_test_without_channels_exits_1(tmp_path: Path) -> None:
    with _Gateway(_config(tmp_path, None)) as gateway:
        result = _alerts("test", "--url", gateway.url, "--master-key", MASTER)
    assert result.exit_code == 1 and "no alert channel is configured" in result.output


def test_list_with_no_alerts_and_a_bad_kind(tmp_path: Path) -> None:
    with _Gateway(_config(tmp_path, None)):
        pass  # migrates the database
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    assert "no alerts" in _alerts("list", "--database-url", database).output
    bad = _alerts("list", "--kind", "nope", "--database-url", database)
    assert bad.exit_code != 0 and "unknown alert kind" in bad.output


def test_list_shows_names_as_typed_not_as_markup(tmp_path: Path) -> None:
    with _Gateway(_config(tmp_path, None)):
        pass  # migrates the database
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    names = ["team [/] closed", "[link=https://evil.test]ops[/link] [bold]x"]

    async def write() -> None:
        engine = create_engine(database)
        try:
            async with AsyncSession(engine) as session, session.begin():
                for i, name in enumerate(names):
                    alert = Alert(
                        kind="test", scope_type="team", scope_id=f"t{i}", scope_name=name, message="m"
                    )
                    assert await record_alert(session, alert, ["webhook"], datetime.now(UTC))
        finally:
            await engine.dispose()

    asyncio.run(write())
    result = _alerts("list", "--database-url", database)
    assert result.exit_code == 0, result.output
    for name in names:
        assert name in result.output

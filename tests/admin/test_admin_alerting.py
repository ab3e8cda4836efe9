"""``POST /alerting/test`` and ``GET /alerting/deliveries`` in the real gateway app: the test
alert goes through the outbox, the alert-sender job (under the job runner) delivers it to a
real HTTP receiver, signed, and the attempt shows in the delivery log. Admin only."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from spendgate.config import parse_config
from spendgate.server import build_app

MASTER = "sk-master-alerting"
WHSEC = "whsec_" + base64.b64encode(b"admin-alerting-test-secret-0001").decode()
ADMIN = {"authorization": f"Bearer {MASTER}"}


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _config(tmp_path: Path, **general: Any) -> Any:
    return parse_config(
        {
            "general_settings": {
                "master_key": MASTER,
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                "journal_dir": str(tmp_path / "journal"),
                **general,
            },
        },
        environ={},
    )


def _wait(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_a_test_alert_is_delivered_and_logged(
    tmp_path: Path, receiver: tuple[str, list[tuple[dict[str, str], bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = receiver
    monkeypatch.setenv("WEBHOOK_URL", url)
    config = _config(
        tmp_path,
        alerting=["webhook"],
        alerting_args={"webhook_secret": WHSEC, "send_interval_seconds": 0.2},
    )
    with TestClient(build_app(config)) as client:
        answer = client.post("/alerting/test", json={"message": "hello from the test"}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        enqueued = answer.json()
        assert enqueued["channels"] == ["webhook"] and enqueued["enqueued"] == 1
        _wait(lambda: len(received) == 1)
        _wait(lambda: client.get("/alerting/deliveries", headers=ADMIN).json()["total"] == 1)
        log = client.get("/alerting/deliveries", headers=ADMIN).json()
        [row] = log["deliveries"]
        assert (row["alert_id"], row["kind"], row["channel"]) == (enqueued["alert_id"], "test", "webhook")
        assert (row["status"], row["status_code"], row["attempt"]) == ("sent", 204, 1)
        assert client.get("/alerting/deliveries?status=retry", headers=ADMIN).json()["total"] == 0
        assert (
            client.get("/alerting/deliveries?channel=webhook&kind=test", headers=ADMIN).json()["total"] == 1
        )
        bad = client.get("/alerting/deliveries?kind=nope", headers=ADMIN)
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "kind"
        unknown = client.post("/alerting/test", json={"channel": "slack"}, headers=ADMIN)
        assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "channel"

        # Not an admin: 403 on both.
        user = client.post("/user/new", json={"user_id": "u1", "user_role": "internal_user"}, headers=ADMIN)
        as_user = {"authorization": f"Bearer {user.json()['key']}"}
        assert client.get("/alerting/deliveries", headers=as_user).status_code == 403
        assert client.post("/alerting/test", json={}, headers=as_user).status_code == 403
        assert client.post("/alerting/test", json={}).status_code == 401
        time.sleep(0.5)  # a few more sender cycles: nothing is sent twice
    assert len(received) == 1
    headers, body = received[0]
    payload = Webhook(WHSEC).verify(body, headers)
    assert payload["event"] == "test" and payload["event_message"] == "hello from the test"
    assert headers["webhook-id"].startswith("msg_")


def test_without_channels_the_test_endpoint_says_so(tmp_path: Path) -> None:
    with TestClient(build_app(_config(tmp_path))) as client:
        answer = client.post("/alerting/test", json={}, headers=ADMIN)
        assert answer.status_code == 200
        assert answer.json()["enqueued"] == 0 and answer.json()["channels"] == []
        assert "no alert channel is configured" in answer.json()["message"]
        assert client.get("/alerting/deliveries", headers=ADMIN).json() == {
            "deliveries": [],
            "total": 0,
            "page": 1,
            "page_size": 50,
        }

"""Real local receivers for the alert tests: an HTTP server (aiohttp, on a real socket, in
the test's event loop) for Slack and webhooks, and an SMTP server (aiosmtpd, in its thread).

The HTTP receiver can answer 500 (``fail_with``) or go away entirely (``stop``: connection
refused) and come back on the same port (``start``), so retries meet real failures.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from spendgate.alerts.settings import EmailChannel, SlackChannel, WebhookChannel

SECRET = b"spendgate-test-secret-0123456789"
WHSEC = "whsec_" + base64.b64encode(SECRET).decode()
SLACK_TOKEN = "T000/B000/XXXXsecretslacktoken"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; answers ``fail_with`` when set, else 200."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    fail_with: int | None = None
    fail_body: str = "receiver failing"
    failures: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_with is not None:
            self.failures += 1
            return web.Response(status=self.fail_with, text=self.fail_body)
        self.received.append(Received(request.path, dict(request.headers), body))
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.reject_with: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reject_with is not None:
            return self.reject_with
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on a free port; ``messages`` holds (envelope, parsed message)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _Collect()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[tuple[Envelope, EmailMessage]]:
        return self.handler.messages

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait (polling) until ``predicate()`` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def slack_channel(receiver: HttpReceiver) -> SlackChannel:
    return SlackChannel("slack", f"{receiver.base}/services/{SLACK_TOKEN}")


def webhook_channel(receiver: HttpReceiver) -> WebhookChannel:
    return WebhookChannel("webhook", f"{receiver.base}/hook?token=hooktoken123", SECRET)


def email_channel(receiver: SmtpReceiver) -> EmailChannel:
    return EmailChannel(
        "email",
        "127.0.0.1",
        receiver.port,
        "alerts@spendgate.test",
        ("finance@example.test", "ops@example.test"),
        "none",
    )

"""Generic webhooks: LiteLLM's ``WebhookEvent`` JSON plus spendgate's fields, signed per
Standard Webhooks.

Headers: ``webhook-id`` (the outbox row's delivery id: the same on every retry, so a
receiver can drop a repeat), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``. A
receiver verifies with its own library (``standardwebhooks``, Svix) or the few lines in
docs/alerts.md. The URL and the secret are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

import httpx
import orjson

from spendgate.alerts.delivery import Delivery
from spendgate.alerts.model import Alert, webhook_event
from spendgate.alerts.settings import WebhookChannel

__all__ = ["send_webhook", "sign", "webhook_body"]


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{ts}.{body}``."""
    digest = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_body(alert: Alert, alert_id: str, created_at: datetime) -> bytes:
    """The JSON body (exact USD numbers)."""
    return orjson.dumps(webhook_event(alert, alert_id, created_at))


async def send_webhook(
    client: httpx.AsyncClient,
    channel: WebhookChannel,
    alert: Alert,
    alert_id: str,
    created_at: datetime,
    delivery_id: str,
    now: datetime,
) -> Delivery:
    """POST the signed event; 2xx is delivered."""
    body = webhook_body(alert, alert_id, created_at)
    timestamp = int(now.timestamp())
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
    }
    if channel.secret is not None:
        headers["webhook-signature"] = sign(channel.secret, delivery_id, timestamp, body)
    try:
        response = await client.post(channel.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Delivery(False, None, f"{type(exc).__name__}: cannot reach the webhook")
    if 200 <= response.status_code < 300:
        return Delivery(True, response.status_code)
    return Delivery(False, response.status_code, f"the webhook answered {response.status_code}")

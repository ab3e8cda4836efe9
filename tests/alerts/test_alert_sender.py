"""The sender delivers each outbox row once, to real receivers: an HTTP server for Slack and
the webhook (signature checked by the independent ``standardwebhooks`` package) and an
SMTP server (aiosmtpd) for email."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from alert_receivers import (
    SLACK_TOKEN,
    WHSEC,
    HttpReceiver,
    SmtpReceiver,
    email_channel,
    slack_channel,
    webhook_channel,
)
from sender_helpers import Clock, budget_alert, deliveries, outbox, record, routing
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from spendgate.alerts import AlertSender, alert_id_of
from spendgate.alerts.slack import slack_message


async def test_each_alert_reaches_each_channel_once(
    engine: AsyncEngine,
    http_receiver: HttpReceiver,
    smtp_receiver: SmtpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    route = routing(
        [slack_channel(http_receiver), webhook_channel(http_receiver), email_channel(smtp_receiver)]
    )
    clock = Clock(datetime.now(UTC))  # the webhook verifier checks the timestamp against its clock
    alerts = [budget_alert(f"k{i}", threshold) for i, threshold in enumerate((50, 80, 100))]
    await record(engine, alerts, route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    try:
        cycle = await sender.run_once()
        again = await sender.run_once()
    finally:
        await sender.aclose()
    assert (cycle.claimed, cycle.sent, cycle.retried, cycle.dead) == (9, 9, 0, 0)
    assert again.claimed == 0

    slack = http_receiver.on(f"/services/{SLACK_TOKEN}")
    hooks = http_receiver.on("/hook")
    assert len(slack) == len(hooks) == len(smtp_receiver.messages) == 3

    # Webhook: LiteLLM's WebhookEvent fields plus spendgate's, verified independently.
    verifier = Webhook(WHSEC)
    by_scope = {}
    for hook in hooks:
        payload = verifier.verify(hook.body, hook.headers)
        by_scope[payload["scope_id"]] = (payload, hook)
    assert sorted(by_scope) == ["k0", "k1", "k2"]
    payload, hook = by_scope["k1"]
    assert payload["event"] == "threshold_crossed" and payload["event_group"] == "key"
    assert payload["spend"] == 8 and payload["max_budget"] == 10
    assert payload["spend_nanos"] == 8_000_000_000 and payload["max_budget_nanos"] == 10_000_000_000
    assert payload["threshold_percent"] == "80" and payload["budget_percentage_used"] == "80.00"
    assert payload["token"] == "hashed-k1" and payload["key_alias"] == "alias-k1"
    assert payload["window"] == "1d" and payload["reset_at"] == "2026-12-06T00:00:00+00:00"
    assert payload["alert_id"] == alert_id_of(alerts[1])
    assert set(payload) >= {
        "event_message", "soft_budget", "customer_id", "user_id", "team_id", "team_alias",
        "organization_id", "user_email", "projected_exceeded_date", "projected_spend",
    }  # fmt: skip
    assert by_scope["k2"][0]["event"] == "budget_crossed"
    tampered = dict(hook.headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(hook.body.replace(b'"k1"', b'"k9"'), tampered)

    # Slack: Block Kit with the figures.
    for received in slack:
        _check_block_kit(received.json())
    message = next(r.json() for r in slack if "k1" in r.body.decode())
    assert message["text"].startswith("Budget 80% crossed: key alias-k1 (1d)")
    types = [b["type"] for b in message["blocks"]]
    assert types[:2] == ["header", "section"] and "actions" in types
    fields = next(b["fields"] for b in message["blocks"] if "fields" in b)
    texts = [f["text"] for f in fields]
    assert "*Spend*\n$8.00" in texts and "*Limit*\n$10.00" in texts and "*Used*\n80.00%" in texts
    assert "*Resets*\n2026-12-06 00:00 UTC" in texts
    assert all(f["type"] == "mrkdwn" for f in fields) and len(fields) <= 10

    # Email: text and HTML parts, to every recipient.
    envelope, mail = next(m for m in smtp_receiver.messages if "alias-k1" in m[1]["Subject"])
    assert envelope.rcpt_tos == ["finance@example.test", "ops@example.test"]
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and html is not None
    assert "Spend: $8.00" in plain.get_content() and "Limit: $10.00" in plain.get_content()
    assert "<th" in html.get_content() and "$10.00" in html.get_content()

    # The log: one attempt per row, sent; the outbox: every row sent.
    log = await deliveries(engine)
    assert len(log) == 9 and {(d.attempt, d.outcome) for d in log} == {(1, "sent")}
    assert {d.status_code for d in log} == {200, 250}
    assert all(row.status == "sent" and row.attempts == 1 for row in await outbox(engine))
    # Secrets never logged: the Slack token, the webhook URL's token, the signing secret.
    for secret in (SLACK_TOKEN, "hooktoken123", WHSEC):
        assert secret not in caplog.text


def _check_block_kit(message: dict[str, Any]) -> None:
    """The rules of Slack's Block Kit this message relies on (block types, text objects,
    length limits: header 150, section text 3000, at most 10 fields of 2000, 50 blocks)."""
    assert isinstance(message["text"], str) and message["text"]
    blocks = message["blocks"]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        assert kind in ("header", "section", "context", "actions", "divider")
        if kind == "header":
            assert block["text"]["type"] == "plain_text" and 0 < len(block["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert (
                    block["text"]["type"] in ("mrkdwn", "plain_text")
                    and 0 < len(block["text"]["text"]) <= 3000
                )
            for field in block.get("fields", []):
                assert field["type"] in ("mrkdwn", "plain_text") and 0 < len(field["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        elif kind == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(e["type"] in ("mrkdwn", "plain_text", "image") for e in block["elements"])
        elif kind == "actions":
            for element in block["elements"]:
                assert element["type"] == "button" and element["text"]["type"] == "plain_text"
                assert element["url"].startswith("https://") and len(element["text"]["text"]) <= 75


async def test_html_escapes_what_callers_named(engine: AsyncEngine, smtp_receiver: SmtpReceiver) -> None:
    route = routing([email_channel(smtp_receiver)])
    clock = Clock()
    alert = budget_alert("<script>x</script>")
    await record(engine, [alert], route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    try:
        assert (await sender.run_once()).sent == 1
    finally:
        await sender.aclose()
    html = smtp_receiver.messages[0][1].get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()


async def test_smtp_refusals_are_retried_and_logged_without_the_password(
    engine: AsyncEngine, smtp_receiver: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plain = email_channel(smtp_receiver)
    starttls = replace(plain, id="email", security="starttls", username="alerts", password="smtp-pass-123")
    clock = Clock()
    route = routing([starttls])
    await record(engine, [budget_alert("k-smtp")], route, clock())
    tls_sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    # The operator turns STARTTLS off (SMTP_TLS=false) and restarts: the same channel id.
    sender = AlertSender(async_sessionmaker(engine), routing([plain]), instance_id="t2", clock=clock)
    try:
        no_tls = await tls_sender.run_once()  # the server offers no STARTTLS: refused before any login
        smtp_receiver.handler.reject_with = "550 mailbox unavailable"
        clock.advance(3600)
        rejected = await sender.run_once()
        smtp_receiver.handler.reject_with = None
        clock.advance(3600)
        accepted = await sender.run_once()
    finally:
        await tls_sender.aclose()
        await sender.aclose()
    assert (no_tls.retried, rejected.retried, accepted.sent) == (1, 1, 1)
    log = await deliveries(engine)
    assert [(d.outcome, d.status_code) for d in log] == [("retry", None), ("retry", 550), ("sent", 250)]
    assert log[1].error is not None and "550" in log[1].error
    assert len(smtp_receiver.messages) == 1
    assert "smtp-pass-123" not in caplog.text and all("smtp-pass-123" not in (d.error or "") for d in log)


def test_long_names_and_messages_stay_within_block_kit_limits() -> None:
    alert = replace(budget_alert("k" * 200), scope_name="n" * 300, message="m" * 5000)
    message = slack_message(alert, "alert_x", link="https://spendgate.example.test/ui")
    _check_block_kit(message)
    without_link = slack_message(
        replace(alert, spend_nanos=None, limit_nanos=None, threshold=None), "a", link=None
    )
    _check_block_kit(without_link)
    assert [b["type"] for b in without_link["blocks"]][-1] == "context"

"""Caller-chosen names (scope names, messages, ids) cannot break or rewrite a delivery: a
CR/LF in a scope name still sends the email with a one-line Subject, a bad
``SMTP_SENDER_EMAIL`` is refused at start, and Slack shows names as typed (no mention, no
hidden link)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from alert_receivers import SmtpReceiver, email_channel
from sender_helpers import Clock, budget_alert, record, routing
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from spendgate.alerts import AlertSender
from spendgate.alerts.settings import routing_from_config
from spendgate.alerts.slack import slack_message
from spendgate.config import parse_config
from spendgate.errors import ConfigurationError


async def test_a_newline_in_a_scope_name_still_sends_one_subject_line(
    engine: AsyncEngine, smtp_receiver: SmtpReceiver
) -> None:
    route = routing([email_channel(smtp_receiver)])
    clock = Clock()
    alert = replace(budget_alert("crlf"), scope_name="ml\r\nBcc: evil@x.test\n" + "x" * 220)
    await record(engine, [alert], route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    try:
        cycle = await sender.run_once()
    finally:
        await sender.aclose()
    assert (cycle.claimed, cycle.sent) == (1, 1)
    ((envelope, message),) = smtp_receiver.messages
    assert "evil@x.test" not in envelope.rcpt_tos and message["Bcc"] is None
    subject = str(message["Subject"])
    assert "ml Bcc: evil@x.test" in subject and "\n" not in subject and len(subject) <= 220


@pytest.mark.parametrize("sender", ["alerts@example.test\nBcc: evil@x.test", "a b@example.test", "alerts@"])
def test_a_bad_sender_address_is_refused(sender: str) -> None:
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_SENDER_EMAIL": sender,
        "SPENDGATE_ALERT_EMAILS": "finance@example.test",
    }
    config = parse_config({"general_settings": {"alerting": ["email"]}}, environ={})
    with pytest.raises(ConfigurationError, match="SMTP_SENDER_EMAIL") as info:
        routing_from_config(config, env)
    assert "evil" not in str(info.value)


def test_a_named_sender_is_accepted() -> None:
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_SENDER_EMAIL": "Spendgate <alerts@example.test>",
        "SPENDGATE_ALERT_EMAILS": "finance@example.test",
    }
    config = parse_config({"general_settings": {"alerting": ["email"]}}, environ={})
    assert routing_from_config(config, env).enabled


def _mrkdwn_texts(body: dict[str, Any]) -> list[str]:
    texts = [body["text"]]
    for block in body["blocks"]:
        if block["type"] == "section":
            texts += [block["text"]["text"]] if "text" in block else [f["text"] for f in block["fields"]]
        elif block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def test_slack_shows_names_as_typed_not_as_mrkdwn() -> None:
    alert = replace(
        budget_alert("a`b<!channel>"),
        scope_name="<!here> & <https://evil.test|your bank>",
        message="<!here> click <https://evil.test|here> & `code`" + "&" * 3000,
    )
    body = slack_message(alert, "alert_x")
    texts = _mrkdwn_texts(body)
    assert len(texts) >= 4  # fallback, message, figures, context
    for text in texts:
        assert "<" not in text and ">" not in text and len(text) <= 3000
        assert not re.search(r"&(?!amp;|lt;|gt;)", text)  # every & is an entity, none cut
    assert "&lt;!here&gt;" in body["text"] and "&lt;https://evil.test|here&gt;" in texts[1]
    (context,) = [t for t in texts if "alert_x" in t]
    assert "`ab&lt;!channel&gt;`" in context

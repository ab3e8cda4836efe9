"""Slack incoming webhooks: a readable Block Kit message (header, message, the figures as
fields, context, a link).

The URL carries the webhook's token, so it is never logged or written to the delivery log:
an error names the status and Slack's short answer only.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from spendgate.alerts.delivery import Delivery, figures, title
from spendgate.alerts.model import Alert
from spendgate.alerts.report_message import report_slack_blocks
from spendgate.alerts.settings import SlackChannel
from spendgate.alerts.spend_report import report_of

__all__ = ["send_slack", "slack_message"]

_MAX_FIELDS = 10  # Slack's limit on a section's fields
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def _escape(text: str, limit: int = 3000) -> str:
    """Slack's mrkdwn escaping (&, <, >): a caller-chosen name cannot ping ``<!here>``,
    hide a link as ``<url|text>`` or name a user; it is shown as typed. Cut at ``limit``
    without leaving half an entity."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _PARTIAL_ENTITY.sub("", escaped[:limit]) if len(escaped) > limit else escaped


def slack_message(alert: Alert, alert_id: str, *, link: str | None = None) -> dict[str, Any]:
    """The Block Kit body of ``alert`` (``text`` is the notification's fallback); a spend
    report has its own layout (:mod:`spendgate.alerts.report_message`)."""
    report = report_of(alert)
    if report is not None:
        text, blocks = _escape(report.message), report_slack_blocks(report, alert_id, _escape)
    else:
        text, blocks = _escape(f"{title(alert)}: {alert.message}"), _alert_blocks(alert, alert_id)
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open spendgate"}, "url": link}
                ],
            }
        )
    return {"text": text, "blocks": blocks}


def _alert_blocks(alert: Alert, alert_id: str) -> list[dict[str, Any]]:
    head = title(alert)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150], "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(alert.message or head)}},
    ]
    fields = [
        {"type": "mrkdwn", "text": f"*{_escape(f.label)}*\n{_escape(f.value)}"}
        for f in figures(alert)[:_MAX_FIELDS]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    scope_id = alert.scope_id.replace("`", "")  # a backtick would end the code span
    context = _escape(f"{alert.scope_type} `{scope_id}` · {alert.kind} · {alert_id}", 2000)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return blocks


async def send_slack(
    client: httpx.AsyncClient, channel: SlackChannel, alert: Alert, alert_id: str, link: str | None
) -> Delivery:
    """POST the message; 2xx is delivered."""
    try:
        response = await client.post(channel.url, json=slack_message(alert, alert_id, link=link))
    except httpx.HTTPError as exc:
        return Delivery(False, None, f"{type(exc).__name__}: cannot reach Slack")
    if 200 <= response.status_code < 300:
        return Delivery(True, response.status_code)
    return Delivery(
        False, response.status_code, f"Slack answered {response.status_code}: {response.text[:100]}"
    )

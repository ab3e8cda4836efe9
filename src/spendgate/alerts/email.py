"""Alert emails over SMTP (aiosmtplib): a text part and an HTML part from jinja2 templates.

The HTML template autoescapes (scope names and messages come from callers). Security is
``starttls`` (LiteLLM's ``SMTP_TLS=True``, the default), ``tls`` (port 465) or ``none``.
The ``Message-ID`` derives from the outbox row's delivery id, the same on every retry, so
a mail system can drop a repeat. The password is never logged.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
import jinja2

from spendgate.alerts.delivery import Delivery, figures, title
from spendgate.alerts.model import Alert
from spendgate.alerts.report_message import report_context
from spendgate.alerts.settings import EmailChannel
from spendgate.alerts.spend_report import report_of

__all__ = ["alert_email", "recipients", "send_email"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("spendgate.alerts", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def recipients(channel: EmailChannel, alert: Alert) -> list[str]:
    """The channel's recipients, then the entity's own for this alert (LiteLLM's
    ``max_budget_alert_emails`` at the threshold crossed, in ``extra["alert_emails"]``),
    each once."""
    own = alert.extra.get("alert_emails")
    extra = [e for e in own if isinstance(e, str)] if isinstance(own, list) else []
    return list(dict.fromkeys([*channel.recipients, *extra]))


def alert_email(
    channel: EmailChannel,
    alert: Alert,
    alert_id: str,
    delivery_id: str,
    now: datetime,
    link: str | None,
) -> EmailMessage:
    """The email of ``alert``: subject, From/To, a text part and its HTML alternative (a
    spend report from its own templates)."""
    report = report_of(alert)
    template = "alert" if report is None else "report"
    context = {
        "title": title(alert),
        "message": alert.message,
        "figures": figures(alert),
        "alert": alert,
        "alert_id": alert_id,
        "link": link,
    }
    if report is not None:
        context = report_context(report, alert_id, link)
    message = EmailMessage()
    message["Subject"] = f"[spendgate] {context['title']}"
    message["From"] = channel.sender
    message["To"] = ", ".join(recipients(channel, alert))
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{delivery_id}@spendgate>"
    message.set_content(_TEMPLATES.get_template(f"{template}.txt.j2").render(context))
    message.add_alternative(_TEMPLATES.get_template(f"{template}.html.j2").render(context), subtype="html")
    return message


async def send_email(channel: EmailChannel, message: EmailMessage, timeout: float) -> Delivery:
    """Send ``message``; delivered when the server accepted it (for at least one recipient)."""
    try:
        errors, reply = await aiosmtplib.send(
            message,
            hostname=channel.host,
            port=channel.port,
            username=channel.username,
            password=channel.password,
            use_tls=channel.security == "tls",
            start_tls=True if channel.security == "starttls" else False,
            timeout=timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:
        return Delivery(False, exc.code, f"SMTP {exc.code}: {exc.message[:200]}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Delivery(
            False, None, f"{type(exc).__name__}: cannot send through {channel.host}:{channel.port}"
        )
    code = int(reply[:3]) if reply[:3].isdigit() else 250
    if errors:
        # Accepted for the others: sending again would repeat it to them. Delivered, noted.
        return Delivery(True, code, f"recipients refused: {', '.join(sorted(errors))}"[:500])
    return Delivery(True, code)

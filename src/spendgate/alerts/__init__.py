"""Alerts (issue #15, DESIGN §5.13): decided once, delivered from an outbox.

- :mod:`.model`: the :class:`Alert` value and LiteLLM's ``WebhookEvent`` body;
- :mod:`.store`: :func:`record_alert` (the unique decision row + one outbox row per
  channel, insert-or-ignore) and the outbox / delivery-log statements;
- :mod:`.settings`: the channels from ``general_settings.alerting`` and the environment;
- :mod:`.slack`, :mod:`.webhook` (Standard Webhooks signature), :mod:`.email` (SMTP);
- :mod:`.sender`: the job that drains the outbox with leases, retries and a delivery log.

Layer: above ``stores`` and ``config``, below everything that detects alerts (enforcement's
settlement, the ledger, batches, jobs), so each of them can record one.
"""

from __future__ import annotations

from spendgate.alerts.model import ALERT_GROUPS, KINDS, Alert, AlertKind, webhook_event
from spendgate.alerts.sender import AlertSender, SendCycle, retry_delay
from spendgate.alerts.settings import AlertRouting, SenderPolicy, routing_from_config
from spendgate.alerts.store import OutboxRepository, alert_id_of, record_alert
from spendgate.alerts.webhook import sign

__all__ = [
    "ALERT_GROUPS",
    "KINDS",
    "Alert",
    "AlertKind",
    "AlertRouting",
    "AlertSender",
    "OutboxRepository",
    "SendCycle",
    "SenderPolicy",
    "alert_id_of",
    "record_alert",
    "retry_delay",
    "routing_from_config",
    "sign",
    "webhook_event",
]

"""``GET /alerting/deliveries`` and ``POST /alerting/test`` (admin only; issue #15).

The delivery log is the sender job's ``alert_deliveries`` rows, newest first, filtered by
outcome, channel and kind. A test alert goes through the same path as every alert:
:func:`~spendgate.alerts.record_alert` in the request's transaction (a unique test id, so
it is always new), one outbox row per chosen channel; the sender job delivers it within
its interval. The answer says what was enqueued (nothing, and why, when no channel is
configured), not whether it arrived: read the log.
"""

from __future__ import annotations

import secrets
from typing import Any

from spendgate.admin._http import Context, Endpoint, endpoint
from spendgate.admin.roles import require_admin, require_reader
from spendgate.admin.schemas.alerting import AlertTest, DeliveriesQuery
from spendgate.alerts import Alert, OutboxRepository, alert_id_of, record_alert
from spendgate.alerts.model import KINDS
from spendgate.http.errors import InvalidField
from spendgate.stores.database.models import AlertDeliveryRow

__all__ = ["ENDPOINTS"]


def _delivery(row: AlertDeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "alert_id": row.alert_id,
        "kind": row.kind,
        "channel": row.channel,
        "attempt": row.attempt,
        "status": row.outcome,
        "status_code": row.status_code,
        "error": row.error,
        "duration_ms": row.duration_ms,
        "attempted_at": row.attempted_at.isoformat(),
        "sender": row.sender,
    }


async def list_deliveries(ctx: Context, query: DeliveriesQuery) -> dict[str, Any]:
    """The delivery log: one row per attempt, newest first."""
    require_reader(ctx.caller, "read the alert delivery log")
    if query.kind is not None and query.kind not in KINDS:
        raise InvalidField(f"kind: unknown alert kind {query.kind!r}", param="kind")
    page = await OutboxRepository(ctx.repo.session).deliveries(
        outcome=query.status,
        channel=query.channel,
        kind=query.kind,
        offset=(query.page - 1) * query.page_size,
        limit=query.page_size,
    )
    return {
        "deliveries": [_delivery(row) for row in page.rows],
        "total": page.total,
        "page": query.page,
        "page_size": query.page_size,
    }


async def send_test(ctx: Context, body: AlertTest) -> dict[str, Any]:
    """Enqueue a test alert to every configured channel (or the one named)."""
    require_admin(ctx.caller, "send a test alert")
    routing = ctx.settings.alerting
    if routing is None or not routing.enabled:
        # Nothing to enqueue is an answer, not a server error: the caller reads why.
        return {
            "alert_id": None,
            "kind": "test",
            "channels": [],
            "enqueued": 0,
            "message": "no alert channel is configured (general_settings.alerting)",
        }
    channels = routing.channels_for("test")
    if body.channel is not None:
        if body.channel not in channels:
            raise InvalidField(
                f"channel: {body.channel!r} is not configured (configured: {', '.join(channels)})",
                param="channel",
            )
        channels = [body.channel]
    alert = Alert(
        kind="test",
        scope_type="test",
        scope_id="test-" + secrets.token_hex(8),
        message=body.message,
        labels={"user_id": ctx.caller.user_id} if ctx.caller.user_id else {},
    )
    created = await record_alert(ctx.repo.session, alert, channels, ctx.now)
    assert created  # a fresh random scope id is always a new alert
    return {
        "alert_id": alert_id_of(alert),
        "kind": "test",
        "channels": channels,
        "enqueued": len(channels),
        "message": f"enqueued to {', '.join(channels)}; see GET /alerting/deliveries",
    }


ENDPOINTS: tuple[Endpoint, ...] = (
    endpoint(
        "/alerting/deliveries",
        list_deliveries,
        "The alert delivery log (one row per attempt), filtered by status, channel and kind",
        query=DeliveriesQuery,
        write=False,
    ),
    endpoint(
        "/alerting/test",
        send_test,
        "Enqueue a test alert to every configured channel, or the one named",
        body=AlertTest,
    ),
)

"""Every statement on the alert tables: the decision row, the outbox, the delivery log.

Exactly-once lives in single statements, so it holds across processes and after a crash:

- :func:`record_alert` inserts the decision row with insert-or-ignore on its unique key
  (kind, scope, window, period start, threshold) and, only if this call inserted it, one
  outbox row per channel, in the caller's transaction: N instances deciding the same alert
  write it once, with its outbox rows, or not at all;
- :meth:`OutboxRepository.claim` is ONE conditional UPDATE (pending, due, and unclaimed or
  under an expired lease) setting a fresh claim token: of any number of senders at most one
  holds a row at a time;
- :meth:`OutboxRepository.finish` records the attempt and moves the row (sent, retry at a
  later time, or dead) in one transaction, only while the claim token is still the row's.

Nothing here commits: the caller owns the transaction. Times are passed in (``now``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import CursorResult, and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.alerts.model import NO_PERIOD, Alert, threshold_text
from spendgate.stores.database.models import AlertDeliveryRow, AlertOutboxRow, AlertRow

__all__ = [
    "Claim",
    "DeliveryPage",
    "OutboxRepository",
    "alert_from_row",
    "alert_id_of",
    "clean_error",
    "record_alert",
]

Outcome = Literal["sent", "retry", "dead"]
_LABELS = "labels"
_FIELDS = "fields"


def alert_id_of(alert: Alert) -> str:
    """The decision row's id: a digest of its unique key, so every instance deciding the same
    alert computes the same id (and a receiver's ``webhook-id`` is stable)."""
    start = alert.period_start or NO_PERIOD
    key = "\x1f".join(
        (
            alert.kind,
            alert.scope_type,
            alert.scope_id,
            alert.window or "",
            start.isoformat(),
            threshold_text(alert.threshold),
        )
    )
    return "alert_" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _delivery_id(alert_id: str, channel: str) -> str:
    return "msg_" + hashlib.sha256(f"{alert_id}\x1f{channel}".encode()).hexdigest()[:40]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _extra(alert: Alert) -> dict[str, Any]:
    return {
        _LABELS: dict(alert.labels),
        _FIELDS: {
            "soft_limit_nanos": alert.soft_limit_nanos,
            "projected_spend_nanos": alert.projected_spend_nanos,
            "projected_exceeded_at": _iso(alert.projected_exceeded_at),
        },
        "extra": dict(alert.extra),
    }


def alert_from_row(row: AlertRow) -> Alert:
    """The :class:`Alert` a decision row was written from."""
    stored = row.extra or {}
    fields = stored.get(_FIELDS) or {}
    projected = fields.get("projected_exceeded_at")
    return Alert(
        kind=row.kind,  # type: ignore[arg-type]  # written from an Alert
        scope_type=row.scope_type,
        scope_id=row.scope_id,
        message=row.message,
        scope_name=row.scope_name,
        window=row.window or None,
        period_start=None if row.period_start == NO_PERIOD else row.period_start,
        period_end=row.period_end,
        threshold=Decimal(row.threshold) if row.threshold else None,
        spend_nanos=row.spend_nanos,
        limit_nanos=row.limit_nanos,
        soft_limit_nanos=fields.get("soft_limit_nanos"),
        reset_at=row.reset_at,
        projected_spend_nanos=fields.get("projected_spend_nanos"),
        projected_exceeded_at=datetime.fromisoformat(projected) if projected else None,
        labels=stored.get(_LABELS) or {},
        extra=stored.get("extra") or {},
    )


async def record_alert(session: AsyncSession, alert: Alert, channels: Sequence[str], now: datetime) -> bool:
    """Write ``alert``'s decision row and its outbox rows (one per channel id in
    ``channels``, due now), unless the same alert was already decided.

    Insert-or-ignore on the unique key: of N sessions (or processes, or instances) deciding
    the same alert, exactly one gets True and writes the outbox rows; the others write
    nothing. The caller commits (the alert is decided when its transaction commits).

    Args:
        session: an open session; not committed here.
        alert: what was decided.
        channels: the channel ids that take it (``AlertRouting.channels_for(alert.kind)``).
        now: the decision time (the outbox rows are due then).

    Returns:
        Whether this call created the alert.
    """
    alert_id = alert_id_of(alert)
    values = {
        "id": alert_id,
        "kind": alert.kind,
        "scope_type": alert.scope_type,
        "scope_id": alert.scope_id,
        # A display name (a team alias) can be longer than its column: the row keeps the
        # first 255 characters rather than refusing the alert (PostgreSQL would).
        "scope_name": alert.scope_name[:255] if alert.scope_name is not None else None,
        "window": alert.window or "",
        "period_start": alert.period_start or NO_PERIOD,
        "period_end": alert.period_end,
        "threshold": threshold_text(alert.threshold),
        "spend_nanos": alert.spend_nanos,
        "limit_nanos": alert.limit_nanos,
        "reset_at": alert.reset_at,
        "message": alert.message[:2000],
        "extra": _extra(alert),
        "created_at": now,
    }
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = maker(AlertRow).values(**values).on_conflict_do_nothing()
    result: CursorResult[Any] = await session.execute(stmt)  # type: ignore[assignment]
    if result.rowcount != 1:
        return False
    if channels:
        await session.execute(
            insert(AlertOutboxRow),
            [
                {
                    "alert_id": alert_id,
                    "channel": channel,
                    "delivery_id": _delivery_id(alert_id, channel),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for channel in dict.fromkeys(channels)
            ],
        )
    return True


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbox row held by one sender until ``until``, with its alert."""

    outbox_id: int
    token: str
    until: datetime
    channel: str
    delivery_id: str
    attempt: int
    """This attempt's number (1 for the first)."""
    created_at: datetime
    alert_id: str
    alert: Alert
    alert_created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """One page of the delivery log, newest first."""

    rows: tuple[AlertDeliveryRow, ...]
    total: int


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean_error(error: str | None, limit: int = 500) -> str | None:
    """A delivery error fit to store: control characters (a receiver's body may hold a NUL,
    which PostgreSQL refuses in text, so the attempt could never be recorded) become one
    space, and the text is capped at ``limit`` characters."""
    if not error:
        return None
    return _CONTROL.sub(" ", error).strip()[:limit] or None


class OutboxRepository:
    """The outbox and delivery-log statements, over one session the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due(self, now: datetime, limit: int) -> list[int]:
        """Ids of pending rows due at ``now`` and not under a live claim, oldest due first."""
        stmt = (
            select(AlertOutboxRow.id)
            .where(
                AlertOutboxRow.status == "pending",
                AlertOutboxRow.next_attempt_at <= now,
                or_(AlertOutboxRow.claimed_until.is_(None), AlertOutboxRow.claimed_until < now),
            )
            .order_by(AlertOutboxRow.next_attempt_at, AlertOutboxRow.id)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def pending_count(self) -> int:
        """Rows still to deliver (pending, due now or later): the outbox gauge."""
        stmt = select(func.count()).select_from(AlertOutboxRow).where(AlertOutboxRow.status == "pending")
        return int(await self.session.scalar(stmt) or 0)

    async def claim(self, outbox_id: int, now: datetime, lease_seconds: float) -> Claim | None:
        """Take the row for ``lease_seconds`` with ONE conditional UPDATE; None when another
        sender holds it, it is not due, or it is no longer pending."""
        token = secrets.token_hex(16)
        until = now + timedelta(seconds=lease_seconds)
        stmt = (
            update(AlertOutboxRow)
            .where(
                AlertOutboxRow.id == outbox_id,
                AlertOutboxRow.status == "pending",
                AlertOutboxRow.next_attempt_at <= now,
                or_(AlertOutboxRow.claimed_until.is_(None), AlertOutboxRow.claimed_until < now),
            )
            .values(claim_token=token, claimed_until=until)
            .execution_options(synchronize_session=False)
        )
        result: CursorResult[Any] = await self.session.execute(stmt)  # type: ignore[assignment]
        if result.rowcount != 1:
            return None
        row = (
            await self.session.execute(
                select(AlertOutboxRow, AlertRow)
                .join(AlertRow, AlertRow.id == AlertOutboxRow.alert_id)
                .where(AlertOutboxRow.id == outbox_id)
            )
        ).one()
        outbox, alert = row
        return Claim(
            outbox_id=outbox.id,
            token=token,
            until=until,
            channel=outbox.channel,
            delivery_id=outbox.delivery_id,
            attempt=outbox.attempts + 1,
            created_at=outbox.created_at,
            alert_id=alert.id,
            alert=alert_from_row(alert),
            alert_created_at=alert.created_at,
        )

    async def finish(
        self,
        claim: Claim,
        *,
        outcome: Outcome,
        attempted_at: datetime,
        duration_ms: int,
        status_code: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
        sender: str | None,
    ) -> bool:
        """Record the attempt and move the row, only if ``claim`` still holds it.

        One transaction (the caller's): the delivery-log row and the outbox update. Returns
        False (and writes nothing) when the claim was lost to another sender.
        """
        error = clean_error(error)
        values: dict[str, Any] = {
            "attempts": claim.attempt,
            "claim_token": None,
            "claimed_until": None,
            "last_error": error,
        }
        if outcome == "sent":
            values.update(status="sent", sent_at=attempted_at)
        elif outcome == "dead":
            values.update(status="dead")
        else:
            assert next_attempt_at is not None
            values.update(next_attempt_at=next_attempt_at)
        stmt = (
            update(AlertOutboxRow)
            .where(AlertOutboxRow.id == claim.outbox_id, AlertOutboxRow.claim_token == claim.token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        result: CursorResult[Any] = await self.session.execute(stmt)  # type: ignore[assignment]
        if result.rowcount != 1:
            return False
        self.session.add(
            AlertDeliveryRow(
                outbox_id=claim.outbox_id,
                alert_id=claim.alert_id,
                kind=claim.alert.kind,
                channel=claim.channel,
                attempt=claim.attempt,
                outcome=outcome,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                attempted_at=attempted_at,
                sender=sender,
            )
        )
        await self.session.flush()
        return True

    async def deliveries(
        self,
        *,
        outcome: str | None = None,
        channel: str | None = None,
        kind: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> DeliveryPage:
        """The delivery log, newest first, filtered; with the filtered total."""
        conditions = []
        if outcome is not None:
            conditions.append(AlertDeliveryRow.outcome == outcome)
        if channel is not None:
            conditions.append(AlertDeliveryRow.channel == channel)
        if kind is not None:
            conditions.append(AlertDeliveryRow.kind == kind)
        where = and_(*conditions) if conditions else None
        stmt = select(AlertDeliveryRow)
        count = select(func.count()).select_from(AlertDeliveryRow)
        if where is not None:
            stmt, count = stmt.where(where), count.where(where)
        stmt = stmt.order_by(AlertDeliveryRow.attempted_at.desc(), AlertDeliveryRow.id.desc())
        rows = (await self.session.scalars(stmt.offset(offset).limit(limit))).all()
        total = int((await self.session.scalar(count)) or 0)
        return DeliveryPage(tuple(rows), total)

    async def recent_alerts(
        self, limit: int = 50, kind: str | None = None
    ) -> list[tuple[AlertRow, list[AlertOutboxRow]]]:
        """The newest alerts, each with its outbox rows (one per channel)."""
        stmt = select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit)
        if kind is not None:
            stmt = stmt.where(AlertRow.kind == kind)
        alerts = list((await self.session.scalars(stmt)).all())
        if not alerts:
            return []
        outbox = (
            await self.session.scalars(
                select(AlertOutboxRow)
                .where(AlertOutboxRow.alert_id.in_([a.id for a in alerts]))
                .order_by(AlertOutboxRow.channel)
            )
        ).all()
        by_alert: dict[str, list[AlertOutboxRow]] = {}
        for row in outbox:
            by_alert.setdefault(row.alert_id, []).append(row)
        return [(a, by_alert.get(a.id, [])) for a in alerts]

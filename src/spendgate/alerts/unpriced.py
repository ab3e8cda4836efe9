"""Unpriced usage: a model without a price was used (DESIGN §1.2: recorded unpriced, alerted).

A job (one instance, under the leader lock) reads the ledger's global rollup rows of
yesterday and today (UTC) that count unpriced requests: a few rows per model and
deployment per 15 minutes, read through the rollups' scope index, never the raw events on a
schedule. Each (deployment, or model when the event has none) with unpriced requests on a
day alerts ``unpriced_usage`` once for that day, with the count so far and the first time
(one look at the events of its first 15-minute bucket). Yesterday is read too, so events
that reached the ledger late (after a database outage) still alert for their own day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from spendgate.alerts.model import Alert
from spendgate.alerts.operational import OperationalAlerts, day_of, when
from spendgate.stores.database.models import SpendEventRow, SpendRollup

__all__ = ["UnpricedScan"]

_GRAIN = 900
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(at: datetime) -> int:
    return int((at - _EPOCH).total_seconds())


@dataclass
class _Seen:
    """One scope's unpriced usage on one day."""

    model: str
    deployment_id: str
    providers: set[str]
    count: int
    first_bucket: int


class UnpricedScan:
    """Alerts ``unpriced_usage`` once per (deployment or model, UTC day); see the module."""

    def __init__(self, alerts: OperationalAlerts) -> None:
        self.alerts = alerts
        self._done: set[tuple[date, str, str]] = set()
        """Decided (or found decided) here: not asked again."""

    async def run_once(self) -> int:
        """One scan; returns the alerts this call created.

        Raises:
            Whatever the database raises (the job logs it and runs again).
        """
        if not self.alerts.wanted("unpriced_usage"):
            return 0
        today, _ = day_of(self.alerts.clock())
        since = today - timedelta(days=1)
        self._done = {key for key in self._done if key[0] >= since.date()}
        created = 0
        for (day, scope_type, scope_id), seen in (await self._unpriced(since)).items():
            if (day, scope_type, scope_id) in self._done:
                continue
            alert = await self._alert(day, scope_type, scope_id, seen)
            created += await self.alerts.record(alert)
            self._done.add((day, scope_type, scope_id))
        return created

    async def _unpriced(self, since: datetime) -> dict[tuple[date, str, str], _Seen]:
        r = SpendRollup
        stmt = select(r.bucket, r.model, r.provider, r.deployment_id, r.unpriced_requests).where(
            r.scope_type == "global",
            r.scope_id == "",
            r.grain == _GRAIN,
            r.bucket >= _epoch(since),
            r.unpriced_requests > 0,
        )
        async with self.alerts.sessions() as session:
            rows = (await session.execute(stmt)).all()
        out: dict[tuple[date, str, str], _Seen] = {}
        for bucket, model, provider, deployment_id, count in rows:
            day = (_EPOCH + timedelta(seconds=bucket)).date()
            key = (day, "deployment", deployment_id) if deployment_id else (day, "model", model or "unknown")
            seen = out.get(key)
            if seen is None:
                out[key] = _Seen(model, deployment_id, {provider}, count, bucket)
            else:
                seen.count += count
                seen.providers.add(provider)
                seen.first_bucket = min(seen.first_bucket, bucket)
        return out

    async def _first(self, seen: _Seen) -> tuple[datetime | None, str | None]:
        """The first unpriced event of the scope in its first bucket: (when, why)."""
        e = SpendEventRow
        start = _EPOCH + timedelta(seconds=seen.first_bucket)
        stmt = (
            select(e.occurred_at, e.unpriced_reason)
            .where(
                e.occurred_at >= start,
                e.occurred_at < start + timedelta(seconds=_GRAIN),
                e.unpriced.is_(True),
                e.model == seen.model if seen.model else e.model.is_(None),
                e.deployment_id == seen.deployment_id if seen.deployment_id else e.deployment_id.is_(None),
            )
            .order_by(e.occurred_at)
            .limit(1)
        )
        async with self.alerts.sessions() as session:
            row = (await session.execute(stmt)).first()
        return (row[0], row[1]) if row is not None else (None, None)

    async def _alert(self, day: date, scope_type: str, scope_id: str, seen: _Seen) -> Alert:
        first_at, reason = await self._first(seen)
        start, end = day_of(datetime(day.year, day.month, day.day, tzinfo=UTC))
        model = seen.model or "unknown"
        where = f" on deployment {seen.deployment_id}" if seen.deployment_id else ""
        calls = "call" if seen.count == 1 else "calls"
        first = f"; the first at {when(first_at)}" if first_at is not None else ""
        return Alert(
            kind="unpriced_usage",
            scope_type=scope_type,
            scope_id=scope_id,
            scope_name=model if scope_type == "deployment" else None,
            message=(
                f"{seen.count} {calls} to model {model}{where} had usage but no price on "
                f"{day.isoformat()} (UTC) so far{first}. They are recorded as unpriced (cost 0, "
                "not billed): add a price for the model (catalogue override or model_info)."
            ),
            window="1d",
            period_start=start,
            period_end=end,
            extra={
                "model": seen.model or None,
                "deployment_id": seen.deployment_id or None,
                "providers": sorted(p for p in seen.providers if p),
                "unpriced_requests": seen.count,
                "first_seen_at": None if first_at is None else first_at.astimezone(UTC).isoformat(),
                "unpriced_reason": reason,
            },
        )

"""Spend adjustments: an administrator sets a key's spend, and the ledger stays append-only.

LiteLLM users reset a key by ``/key/update`` with ``spend`` (usually 0). spendgate never
rewrites history: the change is one more spend event, of status ``adjustment``, whose
``cost_nanos`` is the difference between the value set and the key's spend in its main
window's current period at that moment (negative for a reset), dated when it was made, and
carrying its audit record (who, from what, to what, in which window; the ``adjustment``
column, migration 0010).

An adjustment is **not a request** and belongs to the **key's main window only** (LiteLLM's
``spend`` is the counter of ``max_budget`` + ``budget_duration``; its reset leaves the
key's other windows, and the team's, the user's and the proxy's spend, as they were):

* it is written here, not through the batch writer, and adds to the rollups of its key
  alone (``scope_type`` ``key``, model, provider and deployment ``''``), with every count
  (requests, tokens, latency, cache hits) zero, and to its rows of every model together
  (``key_total``, :data:`~spendgate.ledger.rollups.TOTALS`): a report by key shows the
  key's spend with it and the same request counts; ``global``, team, user, organization, customer, tag,
  model and provider figures never include it;
* the same amount goes to rollup rows of its own, :data:`ADJUSTMENT_ROLLUP` (scope id the
  key), which nothing but the key's budget window reads look at: a read of any budget
  window of the key but its main one (a ``budget_limits`` window, the counters' seeds)
  subtracts them over the same buckets, so it counts real spend only, from the rollups, at
  the same cost whatever the key's history (:mod:`spendgate.ledger.scope_spend`,
  :mod:`spendgate.ledger.rebuild`);
* the event names only its key (``api_key``): reads of raw events by team, user, model or
  provider never match it; reads of every event (the ``global`` scope over a part of a
  bucket), of a model budget's events, and of a key's window that is not its main one,
  leave out :data:`ADJUSTMENT` explicitly.

So the key's main window (``max_budget`` + ``budget_duration``, else its lifetime) shows
the value set, whatever its duration is then: it counts every adjustment dated in its
current period. Every other budget window of the key (``budget_limits``, its model
budgets), and every window of every other scope, keeps counting what was really spent.
The key's ledger figures (reports by key, its lifetime spend, spend logs, exports) show
the adjustment as a line of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.rollups import GRAINS, ROLLUP_KEY, TOTALS
from spendgate.stores.database.models import SpendEventRow, SpendRollup
from spendgate.stores.database.partitions import ensure_partitions, month_of

__all__ = ["ADJUSTMENT", "ADJUSTMENT_ROLLUP", "KeyAdjustment", "adjustment_time", "record_key_adjustment"]

ADJUSTMENT = EventStatus.ADJUSTMENT.value
"""The ``status`` of an adjustment event."""
ADJUSTMENT_ROLLUP = "key_adjustment"
"""The rollup ``scope_type`` of a key's adjustments alone (scope id the ``key_id``): what a
read of a key's window other than its main one subtracts from the key's rollups."""
_EVENTS: Table = SpendEventRow.__table__  # type: ignore[assignment]
_ROLLUPS: Table = SpendRollup.__table__  # type: ignore[assignment]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _audit(
    by: str, from_nanos: int, to_nanos: int, budget_duration: str | None, period_start: datetime
) -> dict[str, Any]:
    return {
        "by": by,
        "from_nanos": from_nanos,
        "to_nanos": to_nanos,
        "budget_duration": budget_duration,
        "period_start": period_start.astimezone(UTC).isoformat(),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAdjustment:
    """One key's spend set from ``from_nanos`` to ``to_nanos`` by ``by`` at ``at``, in the
    current period (starting ``period_start``) of the key's ``budget_duration`` window
    (None: its lifetime)."""

    key_id: str
    at: datetime
    by: str
    from_nanos: int
    to_nanos: int
    budget_duration: str | None
    period_start: datetime

    @property
    def amount_nanos(self) -> int:
        """What the event adds to the key's spend (negative when it lowers it)."""
        return self.to_nanos - self.from_nanos


async def adjustment_time(conn: AsyncConnection, key_id: str, at: datetime, since: datetime) -> datetime:
    """When a new adjustment of the key is dated: ``at``, or just after the key's latest
    adjustment since ``since`` if that is not earlier (two calls one after the other, whose
    clocks were read in the other order), so each adjustment reads the ones before it."""
    events = _EVENTS.c
    latest = await conn.scalar(
        select(func.max(events.occurred_at)).where(
            events.api_key == key_id, events.occurred_at >= since, events.status == ADJUSTMENT
        )
    )
    if latest is None:
        return at
    found = latest if isinstance(latest, datetime) else datetime.fromisoformat(str(latest))
    if found.tzinfo is None:  # naive UTC, should the driver hand the aggregate back as text
        found = found.replace(tzinfo=UTC)
    return max(at, found + timedelta(microseconds=1))


async def record_key_adjustment(conn: AsyncConnection, adjustment: KeyAdjustment) -> str | None:
    """Append the adjustment event and add it to its key's rollups and to its
    :data:`ADJUSTMENT_ROLLUP` rows, in the caller's transaction (the caller commits, with
    whatever else the request changed).

    Returns the event id, or None when the spend already has the value (nothing is written:
    the same call retried adds nothing).
    """
    amount = adjustment.amount_nanos
    if amount == 0:
        return None
    event = SpendEvent(
        event_id=f"adj-{uuid.uuid4().hex}",
        occurred_at=adjustment.at,
        cost_nanos=amount,
        status=EventStatus.ADJUSTMENT,
        api_key=adjustment.key_id,
        endpoint="/key/update",
    )
    row = event.to_row()
    row["adjustment"] = _audit(
        adjustment.by,
        adjustment.from_nanos,
        adjustment.to_nanos,
        adjustment.budget_duration,
        adjustment.period_start,
    )
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        await ensure_partitions(conn, {month_of(event.occurred_at)})
    await conn.execute(insert(_EVENTS).values(row))
    delta = event.occurred_at - _EPOCH
    second = delta.days * 86400 + delta.seconds
    rows = [
        dict(
            zip(
                ROLLUP_KEY,
                (grain, second // grain * grain, scope_type, adjustment.key_id, "", "", ""),
                strict=True,
            ),
            cost_nanos=amount,
        )
        for grain in GRAINS  # ascending, then by scope type: the writers' lock order
        for scope_type in sorted(("key", ADJUSTMENT_ROLLUP, TOTALS["key"]))
    ]
    stmt = (pg_insert if postgres else sqlite_insert)(_ROLLUPS).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={"cost_nanos": _ROLLUPS.c.cost_nanos + stmt.excluded.cost_nanos},
        )
    )
    return event.event_id

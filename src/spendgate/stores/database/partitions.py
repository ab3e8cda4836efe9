"""Monthly range partitions of ``spend_events`` on PostgreSQL, and retention.

Partitions are named ``spend_events_pYYYY_MM`` and cover one UTC calendar month of
``occurred_at``. They are created ahead of time (this month and the next two, by
``spendgate db upgrade`` and by the recorder at start) and on demand before a batch
that falls into a month that has none, so an insert never fails for lack of a partition.

There is deliberately **no DEFAULT partition**: rows in it would block creating the
month's partition later, and retention could not drop them by month.

Retention drops whole partitions whose month ended before ``now - retention``; it never
DELETEs, so there is no dead-tuple bloat. On SQLite (no partitions) retention is a
time-ranged DELETE. Rollups are not touched: reports over expired months stay exact.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "drop_expired_partitions",
    "ensure_partitions",
    "ensure_partitions_ahead",
    "list_partitions",
    "month_of",
    "parse_retention",
]

PARENT = "spend_events"
_NAME_RE = re.compile(r"^spend_events_p(\d{4})_(\d{2})$")
_RETENTION_RE = re.compile(r"^\s*(\d+)\s*(h|d|w|mo)\s*$")
# An arbitrary constant: serialises partition DDL between processes.
_LOCK_ID = 0x5BE9D6A7E


def month_of(at: datetime) -> tuple[int, int]:
    at = at.astimezone(UTC)
    return at.year, at.month


def _next(month: tuple[int, int]) -> tuple[int, int]:
    year, m = month
    return (year + 1, 1) if m == 12 else (year, m + 1)


def _name(month: tuple[int, int]) -> str:
    return f"spend_events_p{month[0]:04d}_{month[1]:02d}"


def parse_retention(value: str | timedelta) -> timedelta:
    """``90d``, ``12w``, ``48h`` or ``6mo`` (30-day months) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _RETENTION_RE.match(value.lower())
    if match is None or int(match[1]) <= 0:
        raise ValueError(f"invalid spend_logs_retention {value!r}: use a format like '90d', '12w' or '6mo'")
    n, unit = int(match[1]), match[2]
    return {
        "h": timedelta(hours=n),
        "d": timedelta(days=n),
        "w": timedelta(weeks=n),
        "mo": timedelta(days=30 * n),
    }[unit]


async def list_partitions(conn: AsyncConnection) -> list[tuple[int, int]]:
    """The months that have a partition, oldest first."""
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": PARENT},
    )
    months = []
    for (name,) in rows:
        match = _NAME_RE.match(name)
        if match:
            months.append((int(match[1]), int(match[2])))
    return sorted(months)


async def ensure_partitions(conn: AsyncConnection, months: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Create the partitions for ``months`` that do not exist yet; returns those created.

    Runs in the caller's transaction and takes a transaction-scoped advisory lock, so
    several processes can call it at once.
    """
    await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))
    existing = set(await list_partitions(conn))
    created = []
    for month in sorted(months - existing):
        lo, hi = month, _next(month)
        # DDL cannot take bind parameters; every interpolated value is an int we formatted.
        await conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {_name(month)} PARTITION OF {PARENT} "
                f"FOR VALUES FROM ('{lo[0]:04d}-{lo[1]:02d}-01 00:00:00+00') "
                f"TO ('{hi[0]:04d}-{hi[1]:02d}-01 00:00:00+00')"
            )
        )
        created.append(month)
    return created


async def ensure_partitions_ahead(
    engine: AsyncEngine, now: datetime, ahead: int = 2
) -> list[tuple[int, int]]:
    """Create partitions for the month of ``now`` and the ``ahead`` months after it."""
    months = {month_of(now)}
    month = month_of(now)
    for _ in range(ahead):
        month = _next(month)
        months.add(month)
    async with engine.begin() as conn:
        return await ensure_partitions(conn, months)


async def drop_expired_partitions(
    engine: AsyncEngine, retention: str | timedelta, *, now: datetime | None = None
) -> list[str]:
    """Apply ``spend_logs_retention``: drop every partition (PostgreSQL) whose month ended
    before ``now - retention``, or DELETE the expired rows (SQLite).

    Returns the names of the dropped partitions (on SQLite: ``["<n> rows"]``).
    """
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - parse_retention(retention)
    if engine.dialect.name != "postgresql":
        from sqlalchemy import delete

        from spendgate.stores.database.models import SpendEventRow

        async with engine.begin() as conn:
            result = await conn.execute(delete(SpendEventRow).where(SpendEventRow.occurred_at < cutoff))
            return [f"{result.rowcount} rows"]
    dropped = []
    async with engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))
        for month in await list_partitions(conn):
            year, m = _next(month)
            if datetime(year, m, 1, tzinfo=UTC) <= cutoff:
                await conn.execute(text(f"DROP TABLE IF EXISTS {_name(month)}"))
                dropped.append(_name(month))
    return dropped

"""The SQLite insert of a batch of spend events, through the raw driver.

On the embedded default the batch writer shares the gateway's process, and every
microsecond of Python it spends per event is taken from the request path (the GIL).
SQLAlchemy's executemany costs about 100 µs of Python per 60-column row here (parameter
construction, a bind processor per datetime and JSON value); this module encodes each
event straight into the values SQLAlchemy would have stored, in C-backed calls where it
can, and sends the batch as one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING``,
whose execution runs in the driver's thread without the GIL.

The rollup increments (a few rows per batch) go through one cached upsert statement.
The encoding is exactly SQLAlchemy's (``test_sqlite_batch_matches_sqlalchemy`` keeps it
so): timestamps as naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``, booleans as 0/1, JSON
columns as ``json.dumps`` text (``null`` for None).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN
from operator import attrgetter
from typing import Any

from spendgate.ledger.events import SpendEvent
from spendgate.ledger.rollups import METRICS, ROLLUP_KEY
from spendgate.stores.database.models import COST_ITEMS, USAGE_COLUMNS

__all__ = [
    "CHUNK_ROWS",
    "MAX_ROWS",
    "ROLLUP_UPSERT",
    "SQLITE_COLUMNS",
    "chunks",
    "insert_statement",
    "rollup_rows",
    "sqlite_row",
    "sqlite_timestamp",
]

_PLAIN = (
    "event_id", "unpriced", "estimated", "cost_nanos", "catalogue_version", "price_source",
    "unpriced_reason", "service_tier", "api_key", "user_id", "team_id", "organization_id", "end_user",
    "requested_model", "model", "resolved_model", "deployment_id", "provider", "endpoint", "operation_id",
    "batch_id", "latency_ms", "overhead_ms", "cache_hit", "saved_nanos",
)  # fmt: skip
_USAGE_TEXT = ("image_size", "image_quality", "search_context_size")
SQLITE_COLUMNS = (
    "occurred_at", "started_at", *_PLAIN, "status", "request_tags", "messages", "response", "seconds_micros",
    *_USAGE_TEXT, *USAGE_COLUMNS, *(f"cost_{item}_nanos" for item in COST_ITEMS),
)  # fmt: skip
_get_plain = attrgetter(*_PLAIN)
_get_usage = attrgetter(*_USAGE_TEXT, *USAGE_COLUMNS)
_ZEROS = (0,) * len(COST_ITEMS)
_NULL = json.dumps(None)
# SQLite allows 32,766 bound values per statement (since 3.32): rows per INSERT.
MAX_ROWS = 32_766 // len(SQLITE_COLUMNS)
# Rows per statement when writing: the values of one statement are built on the event loop
# (about 10 µs a row), and the loop serves requests while the driver runs it.
CHUNK_ROWS = 64


def sqlite_timestamp(at: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores a UTC datetime column on SQLite."""
    if at is None:
        return None
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - 3x faster than strftime here
        at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond,
    )  # fmt: skip


def _json(value: Any) -> str:
    return _NULL if value is None else json.dumps(value)


def sqlite_row(e: SpendEvent) -> tuple[Any, ...]:
    """The ``spend_events`` values of ``e``, in :data:`SQLITE_COLUMNS` order."""
    u = e.usage
    costs = e.cost_items
    seconds = u.seconds
    return (
        sqlite_timestamp(e.occurred_at),
        sqlite_timestamp(e.started_at),
        *_get_plain(e),
        e.status.value,
        json.dumps(list(e.tags)) if e.tags else _NULL,
        _json(e.messages),
        _json(e.response),
        int((seconds * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)) if seconds else 0,
        *_get_usage(u),
        *(map(costs.get, COST_ITEMS, _ZEROS) if costs else _ZEROS),
    )


_STATEMENTS: dict[int, str] = {}


def insert_statement(rows: int) -> str:
    """``INSERT`` of ``rows`` events that skips those already there and returns the keys
    of those it added (cached per row count)."""
    sql = _STATEMENTS.get(rows)
    if sql is None:
        if not 0 < rows <= MAX_ROWS:
            raise ValueError(f"an insert holds 1 to {MAX_ROWS} rows, not {rows}")
        one = "(" + ", ".join("?" * len(SQLITE_COLUMNS)) + ")"
        sql = (
            f"INSERT INTO spend_events ({', '.join(SQLITE_COLUMNS)}) VALUES {', '.join([one] * rows)} "  # noqa: S608 - fixed column names
            "ON CONFLICT (event_id, occurred_at) DO NOTHING RETURNING event_id, occurred_at"
        )
        if len(_STATEMENTS) < 64:
            _STATEMENTS[rows] = sql
    return sql


def chunks(events: Sequence[SpendEvent], size: int = CHUNK_ROWS) -> list[Sequence[SpendEvent]]:
    """``events`` in statements of at most ``size`` (≤ :data:`MAX_ROWS`) rows.

    Full statements of ``size`` rows, then the rest in statements of powers of two rows
    (32, 16, … 1): every connection's driver keeps a prepared statement per distinct SQL
    text (``sqlite3``'s statement cache), and a prepared ``INSERT`` of n rows takes memory
    in proportion to n. With any remainder size allowed, each pooled connection ended up
    holding ``size`` statements of 1 … ``size`` rows (about 12 MB each, a gateway's RSS
    growing for hours); a few fixed sizes hold under 1 MB.
    """
    size = min(size, MAX_ROWS)
    full = len(events) - len(events) % size
    out: list[Sequence[SpendEvent]] = [events[i : i + size] for i in range(0, full, size)]
    start, rest = full, len(events) - full
    step = 1 << max(0, size.bit_length() - 1)
    while rest:
        if step <= rest:
            out.append(events[start : start + step])
            start, rest = start + step, rest - step
        step >>= 1
    return out


ROLLUP_UPSERT = (
    f"INSERT INTO spend_rollups ({', '.join((*ROLLUP_KEY, *METRICS))}) "  # noqa: S608 - fixed names
    f"VALUES ({', '.join('?' * (len(ROLLUP_KEY) + len(METRICS)))}) "
    f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{m} = {m} + excluded.{m}" for m in METRICS)
)
"""Add one rollup increment (values in ``ROLLUP_KEY`` + ``METRICS`` order)."""


def rollup_rows(deltas: Sequence[Mapping[str, int | str]]) -> list[tuple[int | str, ...]]:
    """:func:`~spendgate.ledger.rollups.rollup_deltas` as :data:`ROLLUP_UPSERT` values."""
    return [tuple(map(d.__getitem__, _ROLLUP_COLUMNS)) for d in deltas]


_ROLLUP_COLUMNS = (*ROLLUP_KEY, *METRICS)

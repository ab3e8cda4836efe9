"""Ledger statements: idempotent batch insert of spend events and their rollups.

A write is one transaction (on PostgreSQL, a large batch may be two: see below) that

1. inserts the events, ignoring those already present (``ON CONFLICT DO NOTHING``) and
   getting back the ones that were new (``RETURNING``);
2. adds exactly those new events to the rollups (``INSERT … ON CONFLICT DO UPDATE`` with
   increments, rows sorted by key so concurrent writers lock in the same order).

PostgreSQL (the monthly partitions the batch needs are created first, in a transaction
of their own): the batch is built column by column from the events and ``COPY``-ed into
a session temp table, leaving out the columns that are empty in the whole batch (no
audio tokens, no prompts stored…): the table's defaults fill them in. Then one statement
does 1 and 2, the rollups aggregated in the database: every scalar scope type in one
pass (a grouping set each), tags after fanning out, at the 15-minute grain; the hourly
and daily grains are summed from those. A batch with several models is split in two by model and
written on two connections at once: rollup rows are per model, so the two transactions
lock none of the same rows but the key's and customer's rows of every model together
(``rollups.TOTALS``), which both upsert in one order (one may wait there for the other,
never both), and the database works on both halves in parallel.

SQLite: a multi-row ``INSERT … RETURNING``, rollups aggregated in Python
(:func:`~spendgate.ledger.rollups.rollup_deltas`).

Replaying a batch, or any part of it, changes nothing. Nothing here commits on its own
except the transactions it opens.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from spendgate.core.scopes import ROLLUP_NAMES
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.rollups import (
    ATTRIBUTED,
    BREAKDOWNS,
    GRAINS,
    METRICS,
    ROLLUP_KEY,
    TOTALS,
    mode_of,
    rollup_deltas,
)
from spendgate.ledger.sqlite_batch import ROLLUP_UPSERT as SQLITE_ROLLUP_UPSERT
from spendgate.ledger.sqlite_batch import chunks as sqlite_chunks
from spendgate.ledger.sqlite_batch import insert_statement as sqlite_insert_statement
from spendgate.ledger.sqlite_batch import rollup_rows, sqlite_row, sqlite_timestamp
from spendgate.stores.database.models import COST_ITEMS, USAGE_COLUMNS, SpendEventRow, SpendRollup
from spendgate.stores.database.partitions import ensure_partitions, month_of

__all__ = ["LedgerRepository", "WriteResult"]

EVENTS: Table = SpendEventRow.__table__  # type: ignore[assignment]
ROLLUPS: Table = SpendRollup.__table__  # type: ignore[assignment]
EVENT_COLUMNS = [c.name for c in EVENTS.columns]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SPLIT_MIN = 2_000
"""PostgreSQL batches from this size are written as two concurrent transactions."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int


class LedgerRepository:
    """Writes spend events to one database (an :class:`AsyncEngine`).

    Concurrent calls (from one process or several) are safe: rollup rows are always
    locked in the same order.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._partitions: set[tuple[int, int]] = set()

    async def write_batch(self, events: Sequence[SpendEvent]) -> WriteResult:
        """Insert ``events`` (idempotently) and their rollups.

        SQLite: one transaction. PostgreSQL: a batch of at least :data:`SPLIT_MIN` events
        with several models is written as two concurrent transactions, one per half of the
        models (rollup rows are per model, so the two share only the rows of every model
        together, ``rollups.TOTALS``, upserted in one order); each is
        exact on its own. If one fails the call raises after both have finished, and a
        retry of the whole batch only adds what is missing.
        """
        unique = list({(e.event_id, e.occurred_at): e for e in events}.values())
        if not unique:
            return WriteResult(0, 0)
        try:
            if self.postgres:
                await self._ensure_partitions(unique)
                parts = _split_by_model(unique) if len(unique) >= SPLIT_MIN else [unique]
                results = await asyncio.gather(*map(self._write_pg, parts), return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
                inserted = sum(r for r in results if isinstance(r, int))
            else:
                async with self.engine.begin() as conn:
                    inserted = await self._write_sqlite(conn, unique)
        except BaseException:
            # A partition may have been dropped by retention meanwhile: check again next time.
            self._partitions.clear()
            raise
        return WriteResult(inserted=inserted, duplicates=len(events) - inserted)

    async def recompute_daily_rollups(self, since: datetime | None = None) -> int:
        """Set every daily rollup row (from the UTC day of ``since``; None: all) to the sum
        of its day's hourly rows, and return how many daily rows there are then.

        The repair for daily rows that missed events (a gateway of a version before the
        daily grain kept writing after migration 0011). It *sets*, never adds, so it can run
        any number of times; the table is locked against writers (not readers) meanwhile, so
        no batch lands between the read and the write.
        """
        day = GRAINS[-1]
        lo = 0 if since is None else _epoch_seconds(since) // day * day
        key = ", ".join(ROLLUP_KEY[2:])
        sums = ", ".join(f"CAST(sum({m}) AS BIGINT)" for m in METRICS)
        async with self.engine.begin() as conn:
            if self.postgres:
                await conn.execute(text("LOCK TABLE spend_rollups IN SHARE ROW EXCLUSIVE MODE"))
            # Only module constants are interpolated; the one value is bound.
            delete = f"DELETE FROM spend_rollups WHERE grain = {day} AND bucket >= :lo"  # noqa: S608
            await conn.execute(text(delete), {"lo": lo})
            inserted = await conn.execute(
                text(
                    f"INSERT INTO spend_rollups ({', '.join(ROLLUP_KEY)}, {', '.join(METRICS)}) "  # noqa: S608
                    f"SELECT {day}, bucket / {day} * {day}, {key}, {sums} FROM spend_rollups "
                    f"WHERE grain = {GRAINS[-2]} AND bucket >= :lo GROUP BY bucket / {day} * {day}, {key}"
                ),
                {"lo": lo},
            )
        return int(inserted.rowcount)

    async def _ensure_partitions(self, events: Sequence[SpendEvent]) -> None:
        """Create the monthly partitions the batch needs (in a transaction of its own, so
        that concurrent writers see them), unless this process already made sure of them."""
        times = list(map(_get_occurred_at, events))
        months = _months(min(times), max(times)) - self._partitions
        if months:
            async with self.engine.begin() as conn:
                await ensure_partitions(conn, months)
            self._partitions |= months

    async def _write_sqlite(self, conn: AsyncConnection, events: Sequence[SpendEvent]) -> int:
        # Through the raw driver, in statements of a few dozen rows (see ``sqlite_batch``:
        # this runs in the gateway's process, on its event loop).
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        new_keys: set[tuple[str, str]] = set()
        for part in sqlite_chunks(events):
            cursor = await driver.execute(
                sqlite_insert_statement(len(part)), [v for e in part for v in sqlite_row(e)]
            )
            new_keys.update(await cursor.fetchall())
        fresh = [e for e in events if (e.event_id, sqlite_timestamp(e.occurred_at)) in new_keys]
        deltas = rollup_deltas(fresh)
        if deltas:
            await driver.executemany(SQLITE_ROLLUP_UPSERT, rollup_rows(deltas))
        return len(fresh)

    async def _write_pg(self, events: Sequence[SpendEvent]) -> int:
        async with self.engine.begin() as conn:
            # The batch goes through the raw driver: this statement begins the SQLAlchemy
            # transaction, with settings for this transaction only.
            await conn.execute(_PG_SETTINGS)
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.execute(_CREATE_STAGING)
            columns = pg_columns(events)
            records = zip(*columns.values(), strict=True)
            await driver.copy_records_to_table(_STAGING, records=records, columns=list(columns))
            return int(await driver.fetchval(_PG_WRITE))


def _epoch_seconds(at: datetime) -> int:
    delta = at.astimezone(UTC) - _EPOCH
    return delta.days * 86400 + delta.seconds


def _months(first: datetime, last: datetime) -> set[tuple[int, int]]:
    """The (year, month) of every UTC month from ``first`` to ``last``."""
    year, month = month_of(first)
    end = month_of(last)
    out = {(year, month)}
    while (year, month) < end:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        out.add((year, month))
    return out


def _split_by_model(events: list[SpendEvent]) -> list[list[SpendEvent]]:
    """Two parts of about equal size whose events have no model in common (rollup rows
    are per model, so writers of the two parts never wait for each other's rows, but for
    the rows of every model together, ``rollups.TOTALS``, of a key or customer in both:
    upserted in one order by both, one part may wait for the other there, never both for
    each other); one part when the batch has a single model."""
    models = [e.model or "" for e in events]  # no model and "" share rollup rows
    counts = Counter(models)
    if len(counts) < 2:
        return [events]
    sizes = [0, 0]
    side: dict[str, int] = {}
    for model, count in counts.most_common():
        lighter = 0 if sizes[0] <= sizes[1] else 1
        side[model] = lighter
        sizes[lighter] += count
    parts: list[list[SpendEvent]] = [[], []]
    for event, model in zip(events, models, strict=True):
        parts[side[model]].append(event)
    return parts


# -- PostgreSQL: the batch, column by column, COPYed into a staging table -----------------

# JIT compiling the batch statement costs more than it saves (~300 ms on a 10k batch), and
# the per-scope aggregation needs more than the default 4 MB to stay in memory.
_PG_SETTINGS = text("SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)")
_STAGING = "spend_events_incoming"
_CREATE_STAGING = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE spend_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)

_REQUIRED = ("event_id", "occurred_at", "unpriced", "estimated", "cost_nanos")
_NULLABLE = (
    "started_at", "catalogue_version", "price_source", "unpriced_reason", "service_tier", "api_key",
    "user_id", "team_id", "organization_id", "end_user", "requested_model", "model", "resolved_model",
    "deployment_id", "provider", "endpoint", "operation_id", "batch_id", "latency_ms", "overhead_ms",
)  # fmt: skip
_USAGE_TEXT = ("image_size", "image_quality", "search_context_size")
_CACHE = ("cache_hit", "saved_nanos")
"""False / 0 but on response-cache hits: sent only when a batch has one."""
_JSON = {"request_tags": "tags", "messages": "messages", "response": "response"}
_COST_COLUMNS = tuple(f"cost_{item}_nanos" for item in COST_ITEMS)
PG_COLUMNS = (
    *_REQUIRED, "status", *_NULLABLE, *_CACHE, *_USAGE_TEXT, *_JSON, "seconds_micros", *USAGE_COLUMNS,
    *_COST_COLUMNS,
)  # fmt: skip
_get_status = attrgetter("status")
_get_occurred_at = attrgetter("occurred_at")
_get_usage = attrgetter("usage")
_get_seconds = attrgetter("seconds")
_get_items = attrgetter("cost_items")
_STATUS = {s: s.value for s in EventStatus}


def pg_columns(events: Sequence[SpendEvent]) -> dict[str, list[Any]]:
    """The batch column by column (name → one value per event), leaving out the columns
    whose value is the default (NULL, or 0 for counts) in every event: the staging table
    fills those in.

    This is the hot loop of ingest, so it runs a column at a time, in C where it can
    (``map`` with ``attrgetter`` over the batch). ``test_pg_columns_match_to_row`` keeps it
    equal to :meth:`SpendEvent.to_row`.
    """
    n = len(events)
    out: dict[str, list[Any]] = {name: list(map(attrgetter(name), events)) for name in _REQUIRED}
    out["status"] = list(map(_STATUS.__getitem__, map(_get_status, events)))
    for name in _NULLABLE:
        values = list(map(attrgetter(name), events))
        if values[0] is not None or values.count(None) != n:
            out[name] = values
    for name in _CACHE:
        values = list(map(attrgetter(name), events))
        if any(values):
            out[name] = values
    for column, attr in _JSON.items():
        values = list(map(attrgetter(attr), events))
        if values.count(None) + values.count(()) != n:
            out[column] = [None if v is None or v == () else orjson.dumps(v).decode() for v in values]
    usages = list(map(_get_usage, events))
    for name in _USAGE_TEXT:
        get = attrgetter(name)
        if any(map(get, usages)):
            out[name] = list(map(get, usages))
    if any(map(_get_seconds, usages)):
        out["seconds_micros"] = [
            int((u.seconds * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)) for u in usages
        ]
    for name in USAGE_COLUMNS:
        get = attrgetter(name)
        if any(map(get, usages)):
            out[name] = list(map(get, usages))
    items = list(map(_get_items, events))
    present = set().union(*items)
    for item, column in zip(COST_ITEMS, _COST_COLUMNS, strict=True):
        if item in present:
            out[column] = [d.get(item, 0) for d in items]
    return out


# Rollup scope type → the event column that attributes it; ``global`` rows keep the
# deployment instead. Then the breakdowns (``endpoint``; ``mode`` from ``batch_id``, as
# rollups.mode_of decides it). Tags are fanned out separately.
_SCOPE_COLUMNS = {"global": "deployment_id", **dict(ATTRIBUTED), "endpoint": "endpoint", "mode": "mode"}
_MODE = "CASE WHEN batch_id IS NULL THEN 'realtime' ELSE 'batch' END"


def _pg_write_sql() -> str:
    """One statement for a PostgreSQL batch: insert the staged events (ignoring those
    already present), and add exactly the inserted ones (the ``RETURNING`` rows) to the
    rollups, upserted in key order. Returns the number of events inserted.

    The rollups are aggregated in the database: the scalar scope types in one pass (one
    grouping set each, and one more each for the key's and the customer's rows of every
    model, ``rollups.TOTALS``), tags after fanning out, both at the 15-minute grain; the coarser
    grains are summed from those. It mirrors :func:`spendgate.ledger.rollups.rollup_deltas`
    (used on SQLite); the report tests check both against the raw events. Only module
    constants are interpolated.
    """
    assert (*_SCOPE_COLUMNS, "tag") == (*ROLLUP_NAMES[:-1], *BREAKDOWNS, "tag")
    assert _MODE == f"CASE WHEN batch_id IS NULL THEN '{mode_of(None)}' ELSE '{mode_of('b')}' END"
    columns = ", ".join(PG_COLUMNS)
    fine, coarse = GRAINS[0], GRAINS[1:]
    attributed = (*_SCOPE_COLUMNS.values(), "model", "provider")
    attribution = ", ".join(
        f"{_MODE} AS mode" if c == "mode" else f"coalesce({c}, '') AS {c}" for c in attributed
    )
    sums = (
        "count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'error'), "
        "count(*) FILTER (WHERE unpriced), count(*) FILTER (WHERE estimated), sum(cost_nanos)::bigint, "
        "sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cache_read_tokens)::bigint, "
        "sum(cache_write_tokens)::bigint, sum(reasoning_tokens)::bigint, "
        "sum(coalesce(latency_ms, 0))::bigint, count(*) FILTER (WHERE cache_hit), sum(saved_nanos)::bigint"
    )
    scope_type = " ".join(f"WHEN grouping({c}) = 0 THEN '{t}'" for t, c in _SCOPE_COLUMNS.items())
    totalled = [(TOTALS[t], c) for t, c in ATTRIBUTED if t in TOTALS]
    total_type = " ".join(f"WHEN grouping({c}) = 0 THEN '{t}'" for t, c in totalled)
    scope_id = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in list(_SCOPE_COLUMNS.values())[1:])
    # Per model and provider, each scope column; then every model together (TOTALS), the
    # key's and the customer's columns alone.
    grouping_sets = ", ".join(
        [*(f"(model, provider, {c})" for c in _SCOPE_COLUMNS.values()), *(f"({c})" for _, c in totalled)]
    )
    metrics = ", ".join(METRICS)
    resum = ", ".join(f"sum({m})::bigint" for m in METRICS)
    coarser = "".join(
        f"""
        UNION ALL
        SELECT {g}, bucket / {g} * {g}, scope_type, scope_id, model, provider, deployment_id, {resum}
        FROM fine GROUP BY 1, 2, 3, 4, 5, 6, 7"""  # noqa: S608
        for g in coarse
    )
    key = ", ".join(ROLLUP_KEY)
    # One lock order for every writer; byte order ("C") is the cheap one to sort by.
    order = ", ".join(k if k in ("grain", "bucket") else f'{k} COLLATE "C"' for k in ROLLUP_KEY)
    increments = ", ".join(f"{m} = spend_rollups.{m} + excluded.{m}" for m in METRICS)
    return f"""
WITH ins AS (
    INSERT INTO spend_events ({columns})
    SELECT {columns} FROM {_STAGING}
    ON CONFLICT (event_id, occurred_at) DO NOTHING
    RETURNING floor(extract(epoch FROM occurred_at))::bigint / {fine} * {fine} AS bucket, {attribution},
              request_tags, status, unpriced, estimated, cost_nanos, input_tokens, output_tokens,
              cache_read_tokens, cache_write_tokens, reasoning_tokens, latency_ms, cache_hit, saved_nanos
), fine ({", ".join(ROLLUP_KEY[1:])}, {metrics}) AS (
    SELECT bucket, CASE WHEN grouping(model) = 0 THEN CASE {scope_type} END ELSE CASE {total_type} END END,
           CASE {scope_id} ELSE '' END, CASE WHEN grouping(model) = 0 THEN model ELSE '' END,
           CASE WHEN grouping(provider) = 0 THEN provider ELSE '' END,
           CASE WHEN grouping(deployment_id) = 0 THEN deployment_id ELSE '' END, {sums}
    FROM ins
    GROUP BY bucket, GROUPING SETS ({grouping_sets})
    UNION ALL
    SELECT bucket, 'tag', tag, model, provider, '', {sums}
    FROM ins CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(request_tags, '[""]')) AS t(tag)
    GROUP BY bucket, tag, model, provider
), rolled AS (
    INSERT INTO spend_rollups ({key}, {metrics})
    SELECT * FROM (
        SELECT {fine}, * FROM fine{coarser}
    ) AS deltas ({key}, {metrics})
    ORDER BY {order}
    ON CONFLICT ({key}) DO UPDATE SET {increments}
    RETURNING 1
)
SELECT count(*) FROM ins
"""  # noqa: S608


_PG_WRITE = _pg_write_sql()

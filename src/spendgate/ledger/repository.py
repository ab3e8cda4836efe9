"""Ledger statements: idempotent batch insert of spend events and their rollups.

One call of :meth:`LedgerRepository.write_batch` is one transaction:

1. (PostgreSQL) make sure every month in the batch has a partition;
2. insert the events, ignoring those already present (``ON CONFLICT DO NOTHING``) and
   getting back the ones that were new (``RETURNING``);
3. add exactly those new events to the rollups (``INSERT … ON CONFLICT DO UPDATE`` with
   increments, rows sorted by key so concurrent writers lock in the same order).

PostgreSQL: ``COPY`` into a session temp table, then one statement does 2 and 3, the
rollup fan-out and aggregation running in the database. SQLite: a multi-row ``INSERT …
RETURNING``, rollups aggregated in Python (:func:`~spendgate.ledger.rollups.rollup_deltas`).

Replaying a batch, or any part of it, changes nothing. Nothing here commits on its own
except the transaction it opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import Table, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from spendgate.ledger.events import SpendEvent
from spendgate.ledger.rollups import GRAINS, METRICS, ROLLUP_KEY, rollup_deltas
from spendgate.stores.database.models import COST_ITEMS, USAGE_COLUMNS, SpendEventRow, SpendRollup
from spendgate.stores.database.partitions import ensure_partitions, month_of

__all__ = ["LedgerRepository", "WriteResult"]

EVENTS: Table = SpendEventRow.__table__  # type: ignore[assignment]
ROLLUPS: Table = SpendRollup.__table__  # type: ignore[assignment]
EVENT_COLUMNS = [c.name for c in EVENTS.columns]


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int


class LedgerRepository:
    """Writes spend events to one database (an :class:`AsyncEngine`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._partitions: set[tuple[int, int]] = set()

    async def write_batch(self, events: Sequence[SpendEvent]) -> WriteResult:
        """Insert ``events`` (idempotently) and their rollups in one transaction."""
        unique = list({(e.event_id, e.occurred_at): e for e in events}.values())
        if not unique:
            return WriteResult(0, 0)
        try:
            return await self._write(events, unique)
        except BaseException:
            # A partition may have been dropped by retention meanwhile: check again next time.
            self._partitions.clear()
            raise

    async def _write(self, events: Sequence[SpendEvent], unique: list[SpendEvent]) -> WriteResult:
        async with self.engine.begin() as conn:
            if self.postgres:
                await self._ensure_partitions(conn, unique)
                inserted = await self._write_pg(conn, unique)
            else:
                inserted = await self._write_sqlite(conn, unique)
        return WriteResult(inserted=inserted, duplicates=len(events) - inserted)

    async def _ensure_partitions(self, conn: AsyncConnection, events: Sequence[SpendEvent]) -> None:
        months = {month_of(e.occurred_at) for e in events} - self._partitions
        if months:
            await ensure_partitions(conn, months)
            self._partitions |= months
        else:
            # COPY goes through the raw driver: begin the SQLAlchemy transaction first.
            await conn.execute(select(1))

    async def _write_sqlite(self, conn: AsyncConnection, events: Sequence[SpendEvent]) -> int:
        stmt = (
            sqlite_insert(EVENTS)
            .on_conflict_do_nothing(index_elements=["event_id", "occurred_at"])
            .returning(EVENTS.c.event_id, EVENTS.c.occurred_at)
        )
        result = await conn.execute(stmt, [e.to_row() for e in events])
        new_keys = {(row.event_id, row.occurred_at) for row in result}
        fresh = [e for e in events if (e.event_id, e.occurred_at) in new_keys]
        deltas = rollup_deltas(fresh)
        if deltas:
            upsert = sqlite_insert(ROLLUPS)
            upsert = upsert.on_conflict_do_update(
                index_elements=list(ROLLUP_KEY),
                set_={m: ROLLUPS.c[m] + upsert.excluded[m] for m in METRICS},
            )
            await conn.execute(upsert, deltas)
        return len(fresh)

    async def _write_pg(self, conn: AsyncConnection, events: Sequence[SpendEvent]) -> int:
        await conn.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS spend_events_incoming "
                "(LIKE spend_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        )
        records = [_copy_record(e) for e in events]
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.copy_records_to_table("spend_events_incoming", records=records, columns=COPY_COLUMNS)
        return int(await driver.fetchval(_PG_WRITE))


# COPY rows are built straight from the event (attrgetter runs in C): this is the hot
# loop of ingest. ``test_copy_record_matches_to_row`` keeps it equal to ``to_row``.
_PLAIN = (
    "event_id", "occurred_at", "started_at", "unpriced", "estimated", "cost_nanos", "catalogue_version",
    "price_source", "unpriced_reason", "service_tier", "api_key", "user_id", "team_id", "organization_id",
    "end_user", "requested_model", "model", "resolved_model", "deployment_id", "provider", "endpoint",
    "operation_id", "batch_id", "latency_ms", "overhead_ms",
)  # fmt: skip
_USAGE_TEXT = ("image_size", "image_quality", "search_context_size")
COPY_COLUMNS = [
    *_PLAIN,
    "status",
    "request_tags",
    "messages",
    "response",
    "seconds_micros",
    *_USAGE_TEXT,
    *USAGE_COLUMNS,
    *[f"cost_{item}_nanos" for item in COST_ITEMS],
]
_get_plain = attrgetter(*_PLAIN)
_get_usage = attrgetter(*USAGE_COLUMNS, *_USAGE_TEXT)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _copy_record(e: SpendEvent) -> tuple[Any, ...]:
    u = e.usage
    items = e.cost_items
    seconds = int((u.seconds * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)) if u.seconds else 0
    usage = _get_usage(u)
    return (
        *_get_plain(e),
        e.status.value,
        orjson.dumps(e.tags).decode() if e.tags else None,
        _json(e.messages),
        _json(e.response),
        seconds,
        *usage[-3:],
        *usage[:-3],
        *[items.get(item, 0) for item in COST_ITEMS],
    )


def _pg_write_sql() -> str:
    """One statement for a PostgreSQL batch, from the COPY staging table: insert the events
    (ignoring those already present), and add exactly the inserted ones (the ``RETURNING``
    rows) to the rollups, fanned out to the scope types and tags and aggregated per key in
    the database, upserted in key order. Returns the number of events inserted.

    It mirrors :func:`spendgate.ledger.rollups.rollup_deltas` (used on SQLite); the report
    tests check both against the raw events. Only module constants are interpolated.
    """
    cols = ", ".join(COPY_COLUMNS)
    key = ", ".join(ROLLUP_KEY)
    sums = ", ".join(f"{m} = spend_rollups.{m} + excluded.{m}" for m in METRICS)
    grains = ", ".join(f"({g})" for g in GRAINS)
    fields = ", ".join(
        f"ins.{c}"
        for c in (
            "occurred_at", "model", "provider", "status", "unpriced", "estimated", "cost_nanos",
            "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
            "latency_ms",
        )
    )  # fmt: skip
    return f"""
WITH ins AS (
    INSERT INTO spend_events ({cols})
    SELECT {cols} FROM spend_events_incoming
    ON CONFLICT (event_id, occurred_at) DO NOTHING
    RETURNING occurred_at, api_key, user_id, team_id, organization_id, end_user, request_tags, model,
              provider, deployment_id, status, unpriced, estimated, cost_nanos, input_tokens, output_tokens,
              cache_read_tokens, cache_write_tokens, reasoning_tokens, latency_ms
), fanned AS (
    SELECT {fields}, s.scope_type, s.scope_id, s.dep
    FROM ins CROSS JOIN LATERAL (VALUES
        ('global', '', coalesce(ins.deployment_id, '')),
        ('key', coalesce(ins.api_key, ''), ''),
        ('user', coalesce(ins.user_id, ''), ''),
        ('team', coalesce(ins.team_id, ''), ''),
        ('org', coalesce(ins.organization_id, ''), ''),
        ('customer', coalesce(ins.end_user, ''), '')
    ) AS s(scope_type, scope_id, dep)
    UNION ALL
    SELECT {fields}, 'tag', t.tag, ''
    FROM ins CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(ins.request_tags, '[""]'::jsonb)) AS t(tag)
), rolled AS (
    INSERT INTO spend_rollups ({key}, {", ".join(METRICS)})
    SELECT * FROM (
        SELECT g.grain, floor(extract(epoch FROM f.occurred_at))::bigint / g.grain * g.grain AS bucket,
               f.scope_type COLLATE "C" AS scope_type, f.scope_id COLLATE "C" AS scope_id,
               coalesce(f.model, '') COLLATE "C" AS model, coalesce(f.provider, '') COLLATE "C" AS provider,
               f.dep COLLATE "C" AS dep, count(*), count(*) FILTER (WHERE f.status = 'success'),
               count(*) FILTER (WHERE f.status = 'error'), count(*) FILTER (WHERE f.unpriced),
               count(*) FILTER (WHERE f.estimated), sum(f.cost_nanos), sum(f.input_tokens),
               sum(f.output_tokens), sum(f.cache_read_tokens), sum(f.cache_write_tokens),
               sum(f.reasoning_tokens), sum(coalesce(f.latency_ms, 0))
        FROM fanned AS f CROSS JOIN (VALUES {grains}) AS g(grain)
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ) AS agg
    -- one lock order for every writer; byte order ("C") is the cheap one to sort by
    ORDER BY grain, bucket, scope_type, scope_id, model, provider, dep
    ON CONFLICT ({key}) DO UPDATE SET {sums}
    RETURNING 1
)
SELECT count(*) FROM ins
"""  # noqa: S608


_PG_WRITE = _pg_write_sql()

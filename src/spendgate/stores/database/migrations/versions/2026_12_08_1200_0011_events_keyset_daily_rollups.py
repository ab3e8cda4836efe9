"""The spend-log keyset index and the daily rollup grain

Issue #18 (the dashboard over 10 M events):

* ``ix_spend_events_occurred_at_event_id`` on ``spend_events (occurred_at, event_id)``, a
  B-tree: ``/spend/logs`` lists events newest first and pages with a cursor on that pair,
  so a page is read backwards from the index (the BRIN index cannot give rows in order,
  and PostgreSQL sorted every event). On PostgreSQL it is built **per partition**: the
  parent's index is made ``ON ONLY spend_events``, each existing monthly partition gets
  its own (``spend_events_pYYYY_MM_occurred_at_event_id_idx``, the name PostgreSQL gives
  it on the partitions it creates later) and is attached. A partition's index that already
  exists under that name is kept, so on a large ledger it can be built beforehand without
  blocking writes (``CREATE INDEX CONCURRENTLY``, docs/ledger.md). New partitions get the
  index from the parent.
* ``spend_rollups`` gains the daily grain (``grain`` 86400, UTC days), which the writer
  now maintains with the 15-minute and hourly ones. The existing rows are backfilled
  here: every day's rows are (re)computed as the sum of its hourly rows, with the table
  locked against writers meanwhile (readers are not blocked), so each daily row equals
  the events it covers exactly.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_spend_events_occurred_at_event_id"
_DAY = 86400
_KEY = ("scope_type", "scope_id", "model", "provider", "deployment_id")
_METRICS = (
    "requests", "successful_requests", "failed_requests", "unpriced_requests", "estimated_requests",
    "cost_nanos", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "latency_ms", "cache_hits", "saved_nanos",
)  # fmt: skip
"""The rollup metrics at this revision (frozen: a later column is not this migration's)."""


def _partitions(bind: sa.Connection) -> list[str]:
    rows = bind.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST('spend_events' AS regclass) ORDER BY c.relname"
        )
    )
    return [name for (name,) in rows]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"CREATE INDEX {_INDEX} ON ONLY spend_events (occurred_at, event_id)")
        for partition in _partitions(bind):
            # Partition names are spendgate's own (spend_events_pYYYY_MM), quoted anyway.
            child = f"{partition}_occurred_at_event_id_idx"
            op.execute(f'CREATE INDEX IF NOT EXISTS "{child}" ON "{partition}" (occurred_at, event_id)')
            op.execute(f'ALTER INDEX {_INDEX} ATTACH PARTITION "{child}"')
        op.execute("LOCK TABLE spend_rollups IN SHARE ROW EXCLUSIVE MODE")
    else:
        op.create_index(_INDEX, "spend_events", ["occurred_at", "event_id"], unique=False)
    key, metrics = ", ".join(_KEY), ", ".join(_METRICS)
    sums = ", ".join(f"CAST(sum({m}) AS BIGINT)" for m in _METRICS)
    op.execute(f"DELETE FROM spend_rollups WHERE grain = {_DAY}")  # noqa: S608 - constants only
    op.execute(
        f"INSERT INTO spend_rollups (grain, bucket, {key}, {metrics}) "  # noqa: S608 - constants only
        f"SELECT {_DAY}, bucket / {_DAY} * {_DAY}, {key}, {sums} FROM spend_rollups "
        f"WHERE grain = 3600 GROUP BY bucket / {_DAY} * {_DAY}, {key}"
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM spend_rollups WHERE grain = {_DAY}")  # noqa: S608 - constants only
    op.drop_index(_INDEX, table_name="spend_events")

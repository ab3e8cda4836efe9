"""Ledger ingest and report storage on PostgreSQL

PostgreSQL only (SQLite keeps its schema):

* ``spend_rollups`` gets ``fillfactor = 70``. Every batch increments the rollup rows of
  the current buckets; with free space on their pages the update is HOT (heap-only: no
  index entry is written, and old versions are pruned in place). At the default 100,
  each increment also adds an entry to every rollup index and the table bloats until
  vacuum. Applies to pages written from now on.
* ``ix_spend_events_occurred_at`` becomes a BRIN index. Events arrive in time order, so
  a block-range index serves the time-range reads (rolling-window rebuilds) at a
  fraction of the cost of a B-tree entry per inserted event.
* ``ix_spend_rollups_report`` on ``(grain, scope_type, bucket, scope_id, model,
  provider, deployment_id)``, the key values in byte order: reports read rows in that
  order and can aggregate them as they stream out, without hashing or sorting.
* ``spendgate_sum(bigint)``: an aggregate of BIGINT addition. ``sum(bigint)`` returns
  NUMERIC, costly to build and decode for tens of thousands of report rows; this one
  stays BIGINT and raises on overflow (never wraps).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE spend_rollups SET (fillfactor = 70)")
    op.drop_index("ix_spend_events_occurred_at", table_name="spend_events")
    op.create_index(
        "ix_spend_events_occurred_at", "spend_events", ["occurred_at"], unique=False, postgresql_using="brin"
    )
    op.execute(
        "CREATE INDEX ix_spend_rollups_report ON spend_rollups (grain, scope_type, bucket, "
        'scope_id COLLATE "C", model COLLATE "C", provider COLLATE "C", deployment_id COLLATE "C")'
    )
    op.execute(
        "CREATE AGGREGATE spendgate_sum(bigint) "
        "(SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl, PARALLEL = SAFE)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP AGGREGATE spendgate_sum(bigint)")
    op.drop_index("ix_spend_rollups_report", table_name="spend_rollups")
    op.drop_index("ix_spend_events_occurred_at", table_name="spend_events")
    op.create_index("ix_spend_events_occurred_at", "spend_events", ["occurred_at"], unique=False)
    op.execute("ALTER TABLE spend_rollups RESET (fillfactor)")

"""spend_events.cache_hit / saved_nanos and spend_rollups.cache_hits / saved_nanos

Issue #17 item 1 (response caching): a call answered from the gateway's response cache
costs nothing and is recorded with ``cache_hit`` true and ``saved_nanos``, what the call
would have cost (nano-USD, priced as the call the cached answer came from); the rollups
sum both, so reports show the savings without reading events. Every new column is NOT
NULL with a constant default (false / 0), so existing rows read as "no hit, nothing saved"
and adding them rewrites no table (PostgreSQL 11+, SQLite's ADD COLUMN).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _nanos(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    op.add_column(
        "spend_events", sa.Column("cache_hit", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("spend_events", _nanos("saved_nanos"))
    op.add_column("spend_rollups", _nanos("cache_hits"))
    op.add_column("spend_rollups", _nanos("saved_nanos"))


def downgrade() -> None:
    with op.batch_alter_table("spend_rollups") as batch:
        batch.drop_column("saved_nanos")
        batch.drop_column("cache_hits")
    with op.batch_alter_table("spend_events") as batch:
        batch.drop_column("saved_nanos")
        batch.drop_column("cache_hit")

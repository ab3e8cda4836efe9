"""spend_events.adjustment: who set a key's spend, and from what to what

Issue #17 item 4: ``/key/update`` with ``spend`` sets a key's current spend the way LiteLLM
users reset a key. The ledger stays append-only: the change is a spend event of status
``adjustment`` whose ``cost_nanos`` is the difference (it may be negative), counted in the
key's spend only (:mod:`spendgate.ledger.adjustments`). There is no separate audit table,
so the event carries its audit record in this column: ``{"by", "from_nanos", "to_nanos",
"budget_duration", "period_start"}``. NULL on every other event; adding a nullable column
rewrites no table (PostgreSQL: the partitions inherit it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "spend_events", sa.Column("adjustment", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("spend_events") as batch:
        batch.drop_column("adjustment")

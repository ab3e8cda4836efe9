"""sdk_budgets: the SDK BudgetManager's per-user budgets, shared across processes and machines

LiteLLM's BudgetManager keeps ``{user: {total_budget, current_cost, model_cost, ...}}`` in a
JSON file; spendgate's, given a database URL, keeps one row per (project, user) here, so
several machines share the budgets (issue #14 item 5). Money is BIGINT nano-USD
(``total_budget_nanos``, ``current_cost_nanos``, ``reserved_nanos``; ``model_cost`` and
``reservations`` hold integer nano-USD in JSON). A new table: nothing existing changes,
and the downgrade drops it (with any rows).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 01:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sdk_budgets",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("total_budget_nanos", sa.BigInteger(), nullable=False),
        sa.Column("duration", sa.String(length=16), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("calendar", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_cost_nanos", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved_nanos", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("model_cost", _json(), nullable=True),
        sa.Column("reservations", _json(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column(
            "last_updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("project", "user_id", name=op.f("pk_sdk_budgets")),
    )


def downgrade() -> None:
    op.drop_table("sdk_budgets")

"""budget_start on keys, users, teams, organizations, customers and budget profiles

Issue #17 item 3: a ``budget_duration`` that is no calendar unit (``90d``, ``45d``,
``2w``) runs from the budget's own start, the moment its duration was set (creation, or
the last change of ``budget_duration``). Existing rows start at their ``created_at``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("virtual_keys", "users", "teams", "organizations", "end_customers", "budgets")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("budget_start", sa.DateTime(timezone=True), nullable=True))
        t = sa.table(table, sa.column("budget_start"), sa.column("created_at"))
        op.execute(t.update().values(budget_start=t.c.created_at))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("budget_start")

"""virtual_keys.key_id: a key's stable identity

A key's hash (``token``) changes when the key is regenerated; its spend, budget windows
and counters must not. ``key_id`` is set once, to the hash the key was first issued
with, and is what budgets, counters and spend events name the key by.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("virtual_keys") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=64), nullable=True))
    # Existing keys: their windows and spend events already name them by the current
    # hash, so that hash becomes their stable id.
    op.execute("UPDATE virtual_keys SET key_id = token")
    with op.batch_alter_table("virtual_keys") as batch:
        batch.alter_column("key_id", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(op.f("uq_virtual_keys_key_id"), ["key_id"])


def downgrade() -> None:
    with op.batch_alter_table("virtual_keys") as batch:
        batch.drop_constraint(op.f("uq_virtual_keys_key_id"), type_="unique")
        batch.drop_column("key_id")

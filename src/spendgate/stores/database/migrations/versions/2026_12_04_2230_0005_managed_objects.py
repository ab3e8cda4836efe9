"""managed_objects: the files and batches that pass through the gateway

A batch is one billed operation (issue #12): its row holds the id the client sees, the
deployment and the provider's own id, the creator's attribution captured at creation, the
enforcer's persisted reservation, and, once a poller has claimed and settled it, the exact
cost and when. Two indexes serve the poller's lanes (unsettled batches in creation order)
and the listings by owner key and by team. A new table: nothing existing changes, and the
downgrade drops it (with any rows).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "managed_objects",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("api", sa.String(length=16), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("model_group", sa.String(length=255), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("endpoint", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("input_file_id", sa.String(length=255), nullable=True),
        sa.Column("output_file_id", sa.String(length=255), nullable=True),
        sa.Column("error_file_id", sa.String(length=255), nullable=True),
        sa.Column("requests_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("requests_completed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("requests_failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("team_id", sa.String(length=255), nullable=True),
        sa.Column("organization_id", sa.String(length=255), nullable=True),
        sa.Column("end_user", sa.String(length=255), nullable=True),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("reservation", _json(), nullable=True),
        sa.Column("reserved_nanos", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=True),
        sa.Column("unpriced", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("usage", _json(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stale", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_managed_objects")),
    )
    op.create_index(
        "ix_managed_objects_poll", "managed_objects", ["kind", "settled_at", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_managed_objects_owner", "managed_objects", ["api_key", "kind", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_managed_objects_team", "managed_objects", ["team_id", "kind", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_managed_objects_team", table_name="managed_objects")
    op.drop_index("ix_managed_objects_owner", table_name="managed_objects")
    op.drop_index("ix_managed_objects_poll", table_name="managed_objects")
    op.drop_table("managed_objects")

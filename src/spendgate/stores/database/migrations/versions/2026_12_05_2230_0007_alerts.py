"""alerts, alert_outbox, alert_deliveries: alerts decided once, delivered from an outbox

Issue #15 (DESIGN §5.13): ``alerts`` holds one row per decided alert, unique on (kind,
scope_type, scope_id, window, period_start, threshold), so N instances deciding the same
crossing write it once; ``alert_outbox`` one row per (alert, channel), written in the same
transaction and drained by the sender job; ``alert_deliveries`` one row per attempt. New
tables only: nothing existing changes, and the downgrade drops them (with their rows).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id() -> sa.BigInteger:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("scope_type", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=255), nullable=False),
        sa.Column("scope_name", sa.String(length=255), nullable=True),
        sa.Column("window", sa.String(length=32), nullable=False),
        _when("period_start", nullable=False),
        _when("period_end"),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("spend_nanos", sa.BigInteger(), nullable=True),
        sa.Column("limit_nanos", sa.BigInteger(), nullable=True),
        _when("reset_at"),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("extra", _json(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "uq_alerts_decision",
        "alerts",
        ["kind", "scope_type", "scope_id", "window", "period_start", "threshold"],
        unique=True,
    )
    op.create_index("ix_alerts_created", "alerts", ["created_at", "id"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _when("next_attempt_at", nullable=False),
        sa.Column("claim_token", sa.String(length=64), nullable=True),
        _when("claimed_until"),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        _when("sent_at"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_outbox_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
    )
    op.create_index("uq_alert_outbox_alert_channel", "alert_outbox", ["alert_id", "channel"], unique=True)
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["status", "next_attempt_at", "id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("outbox_id", _id(), nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        _when("attempted_at", nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["alert_outbox.id"],
            name=op.f("fk_alert_deliveries_outbox_id_alert_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index("ix_alert_deliveries_outbox", "alert_deliveries", ["outbox_id", "attempt"])
    op.create_index("ix_alert_deliveries_attempted", "alert_deliveries", ["attempted_at", "id"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_outbox")
    op.drop_table("alerts")

"""Rollup rows of every model together, per key and per customer

Issue #18 (the Spend page by key or customer per day in any zone, over 10 M events): the
writer now also keeps, for keys and end customers, rows of scope type ``key_total`` and
``customer_total`` with model, provider and deployment ``''``: the same spend per scope id
and bucket, one row where there was one per model (``spendgate.ledger.rollups.TOTALS``).
Reports by key or customer that do not show the model read them.

They are backfilled here from the rollup rows themselves (each total is the sum of its
scope's rows of the same grain, bucket and id, adjustments included, as the key's rows
include them), with the table locked against writers meanwhile (readers are not blocked),
so each total equals its rows exactly. A gateway of an earlier version still writing after
this runs adds to the per-model rows but not to the totals: stop them before upgrading.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCOPES = ("key", "customer")
_METRICS = (
    "requests", "successful_requests", "failed_requests", "unpriced_requests", "estimated_requests",
    "cost_nanos", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "latency_ms", "cache_hits", "saved_nanos",
)  # fmt: skip
"""The rollup metrics (frozen at this revision)."""
_TOTALS = ", ".join(f"'{s}_total'" for s in _SCOPES)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE spend_rollups IN SHARE ROW EXCLUSIVE MODE")
    metrics = ", ".join(_METRICS)
    sums = ", ".join(f"CAST(sum({m}) AS BIGINT)" for m in _METRICS)
    scopes = ", ".join(f"'{s}'" for s in _SCOPES)
    op.execute(f"DELETE FROM spend_rollups WHERE scope_type IN ({_TOTALS})")  # noqa: S608
    # Constants only are interpolated.
    op.execute(
        "INSERT INTO spend_rollups (grain, bucket, scope_type, scope_id, model, provider, "  # noqa: S608
        f"deployment_id, {metrics}) "
        f"SELECT grain, bucket, scope_type || '_total', scope_id, '', '', '', {sums} "
        f"FROM spend_rollups WHERE scope_type IN ({scopes}) GROUP BY grain, bucket, scope_type, scope_id"
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM spend_rollups WHERE scope_type IN ({_TOTALS})")  # noqa: S608

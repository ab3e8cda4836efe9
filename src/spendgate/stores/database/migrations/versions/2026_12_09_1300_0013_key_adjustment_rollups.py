"""A key's spend adjustments in rollup rows of their own

A key's spend set by ``/key/update`` (an adjustment event, migration 0010) moves the key's
main budget window only: reads of its other windows subtract the adjustments, which the
ledger now also keeps in rollup rows of scope type ``key_adjustment`` (scope id the key,
model, provider and deployment ``''``, the amount in ``cost_nanos``, every count zero;
``spendgate.ledger.adjustments``). This backfills those rows from the adjustments already
recorded, at all three grains, with ``spend_rollups`` locked against writers meanwhile,
so a key reset before the upgrade stops lowering its ``budget_limits`` windows too.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GRAINS = (900, 3600, 86400)
_ZERO = (
    "requests", "successful_requests", "failed_requests", "unpriced_requests", "estimated_requests",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "latency_ms", "cache_hits", "saved_nanos",
)  # fmt: skip
"""The rollup metrics an adjustment leaves at zero (frozen at this revision)."""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE spend_rollups IN SHARE ROW EXCLUSIVE MODE")
        epoch = "floor(extract(epoch FROM occurred_at))::bigint"
    else:
        epoch = "CAST(strftime('%s', occurred_at) AS INTEGER)"
    zeros = ", ".join(_ZERO)
    op.execute("DELETE FROM spend_rollups WHERE scope_type = 'key_adjustment'")
    for grain in _GRAINS:  # constants only are interpolated
        op.execute(
            "INSERT INTO spend_rollups (grain, bucket, scope_type, scope_id, model, provider, "  # noqa: S608
            f"deployment_id, cost_nanos, {zeros}) "
            f"SELECT {grain}, {epoch} / {grain} * {grain}, 'key_adjustment', api_key, '', '', '', "
            f"CAST(sum(cost_nanos) AS BIGINT), {', '.join('0' for _ in _ZERO)} "
            "FROM spend_events WHERE status = 'adjustment' AND api_key IS NOT NULL GROUP BY 2, 4"
        )


def downgrade() -> None:
    op.execute("DELETE FROM spend_rollups WHERE scope_type = 'key_adjustment'")

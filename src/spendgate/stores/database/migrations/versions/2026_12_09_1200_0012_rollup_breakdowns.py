"""Spend by endpoint and by batch or real-time: two rollup breakdowns

Issue #18 (the Spend page stacked by endpoint, and batch versus real-time): the writer
now keeps rollup rows of two more ``scope_type`` values, as it keeps ``global``:

* ``endpoint``: the call's endpoint, as its canonical path (``/v1/chat/completions``; the
  gateway records the canonical path whichever route the call came by from now on);
* ``mode``: ``batch`` for a batch's settlement (``batch_id`` set), ``realtime`` otherwise.

Both are backfilled here from the events still in the ledger (at all three grains), with
the table locked against writers meanwhile (readers are not blocked), so each row equals
the events it covers exactly. Older events recorded the route as called (``/chat/completions``)
or, from the SDK, the endpoint's name (``chat``): the backfill files them under the canonical
path. Adjustments (a key's spend set by ``/key/update``) are no request and belong to the key
only: they are left out, as from every breakdown. Periods whose events were already dropped
by retention have no breakdown rows: their spend is in the other rollups only.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINE = 900
_COARSE = (3600, 86400)
_KEY = ("scope_type", "scope_id", "model", "provider", "deployment_id")
_METRICS = (
    "requests", "successful_requests", "failed_requests", "unpriced_requests", "estimated_requests",
    "cost_nanos", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "latency_ms", "cache_hits", "saved_nanos",
)  # fmt: skip
"""The rollup metrics at this revision (frozen: a later column is not this migration's)."""
_PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "images": "/v1/images/generations",
    "transcriptions": "/v1/audio/transcriptions",
    "speech": "/v1/audio/speech",
    "messages": "/v1/messages",
}
"""The endpoints' canonical paths at this revision (frozen: ``providers.base.ENDPOINT_PATHS``)."""


def _endpoint() -> str:
    """The canonical path of an event's recorded ``endpoint``, in SQL."""
    whens = [f"WHEN '{name}' THEN '{path}'" for name, path in _PATHS.items()]
    whens += [f"WHEN '{path.removeprefix('/v1')}' THEN '{path}'" for path in _PATHS.values()]
    return f"CASE coalesce(endpoint, '') {' '.join(whens)} ELSE coalesce(endpoint, '') END"


def _metric_sums() -> str:
    """The rollup metrics of a group of events (portable: no ``FILTER``)."""
    counts = {
        "successful_requests": "status = 'success'",
        "failed_requests": "status = 'error'",
        "unpriced_requests": "unpriced",
        "estimated_requests": "estimated",
        "cache_hits": "cache_hit",
    }
    sums = {"requests": "count(*)", "latency_ms": "sum(coalesce(latency_ms, 0))"}
    return ", ".join(
        "CAST({} AS BIGINT)".format(
            sums.get(m) or (f"sum(CASE WHEN {counts[m]} THEN 1 ELSE 0 END)" if m in counts else f"sum({m})")
        )
        for m in _METRICS
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("LOCK TABLE spend_rollups IN SHARE ROW EXCLUSIVE MODE")
        epoch = "floor(extract(epoch FROM occurred_at))::bigint"
    else:
        epoch = "CAST(strftime('%s', occurred_at) AS INTEGER)"
    bucket = f"{epoch} / {_FINE} * {_FINE}"
    mode = "CASE WHEN batch_id IS NULL THEN 'realtime' ELSE 'batch' END"
    key, metrics = ", ".join(_KEY), ", ".join(_METRICS)
    sums = ", ".join(f"CAST(sum({m}) AS BIGINT)" for m in _METRICS)
    # Constants only are interpolated below (this module's names and numbers).
    op.execute("DELETE FROM spend_rollups WHERE scope_type IN ('endpoint', 'mode')")
    for scope_type, scope_id in (("endpoint", _endpoint()), ("mode", mode)):
        op.execute(
            f"INSERT INTO spend_rollups (grain, bucket, {key}, {metrics}) "  # noqa: S608
            f"SELECT {_FINE}, {bucket}, '{scope_type}', {scope_id}, coalesce(model, ''), "
            f"coalesce(provider, ''), '', {_metric_sums()} "
            "FROM spend_events WHERE status <> 'adjustment' GROUP BY 2, 4, 5, 6"
        )
    for grain in _COARSE:
        op.execute(
            f"INSERT INTO spend_rollups (grain, bucket, {key}, {metrics}) "  # noqa: S608
            f"SELECT {grain}, bucket / {grain} * {grain}, {key}, {sums} FROM spend_rollups "
            f"WHERE grain = {_FINE} AND scope_type IN ('endpoint', 'mode') "
            f"GROUP BY bucket / {grain} * {grain}, {key}"
        )


def downgrade() -> None:
    op.execute("DELETE FROM spend_rollups WHERE scope_type IN ('endpoint', 'mode')")

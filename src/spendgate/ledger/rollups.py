"""Rollups: exact totals per time bucket and (scope, model, provider).

They are maintained in the same transaction as the event insert, from the events that
insert actually added (``RETURNING``), so a replayed or duplicated event never counts
twice and a rollup is always exactly the sum of the events it covers.

Rows are keyed by ``(grain, bucket, scope_type, scope_id, model, provider,
deployment_id)``. ``deployment_id`` is only filled on the ``global`` scope rows (so
"by deployment" reports exist, but not combined with a scope such as team): keeping it on
every scope would double the rows written per event. The :data:`BREAKDOWNS` (``endpoint``,
``mode``: batch or real-time) are kept the same way, as rows of their own ``scope_type``
(migration 0012), so they combine with model and provider but not with a scope.

Buckets are UTC epoch-aligned and kept at three grains: 15 minutes, 1 hour and 1 UTC day
(migration 0011 added the day and backfilled it from the hours). Reports read each
stretch of their range from the coarsest grain whose buckets lie inside one of their
periods (:mod:`spendgate.ledger.reports`). Every UTC offset in use since 1972 is a
multiple of 15 minutes, so the 15-minute grain answers exactly in any zone
(Asia/Kolkata +5:30, Asia/Kathmandu +5:45); UTC days, weeks and months read the daily
grain (a month is 30 rows per group, not 720), and any other zone's days, weeks and
months read them too, plus or minus the hours and quarter hours between each local
midnight and the nearest UTC one (:func:`spendgate.ledger.report_plan.signed_plan`).
Keys and customers also have rows of every model together (:data:`TOTALS`), which
reports not showing the model read. The trade-off is
write volume: each event touches 3 grains × 11 scope types and breakdowns (more with several
tags; the breakdowns have few values, so a batch adds to few of their rows); the
writer aggregates a batch first (on PostgreSQL in the database, on SQLite with
:func:`rollup_deltas`), so under load (bigger batches) the rows written per event fall,
and a batch adds to one daily row where it adds to one hourly row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import add, attrgetter

from spendgate.core.scopes import ROLLUP_SCOPE_TYPES
from spendgate.ledger.events import EventStatus, SpendEvent

__all__ = [
    "ATTRIBUTED",
    "BREAKDOWNS",
    "GRAINS",
    "METRICS",
    "ROLLUP_KEY",
    "TOTALS",
    "mode_of",
    "rollup_deltas",
]

GRAINS = (900, 3600, 86400)
"""The rollup bucket widths in seconds, finest first: each divides the next."""
ATTRIBUTED: tuple[tuple[str, str], ...] = tuple(
    (t.rollup, t.ledger_column)
    for t in ROLLUP_SCOPE_TYPES
    if t.rollup is not None and t.ledger_column is not None
)
"""``(rollup scope type, spend_events column)`` of the scope types attributed by one column
(key, user, team, org, customer): the rest of :data:`~spendgate.core.scopes.ROLLUP_SCOPE_TYPES`
is ``global`` (every event) and ``tag`` (fanned out from ``request_tags``)."""
TOTALS = {"key": "key_total", "customer": "customer_total"}
"""Rollup scope type → its twin of every model in one row (``key`` → ``key_total``): the
same spend per scope id and bucket with model, provider and deployment ``''`` (migration
0014). A report by key or customer alone reads one row per value and bucket instead of one
per model (a key uses a few models, a customer dozens): 3 to 40 times fewer rows, for the
scopes of thousands of values. Not kept for users, teams and organizations: few enough
rows per value already, and their few values would make the rows every concurrent writer
adds to (an organization's, per bucket), where they are per model now."""
BREAKDOWNS = ("endpoint", "mode")
"""Rollup ``scope_type`` values that are no budget scope but a breakdown of all spend: by
``endpoint`` (the call's canonical path, ``/v1/chat/completions``; a batch's is its
requests' endpoint) and by ``mode`` (``batch`` for a batch's settlement, ``realtime``
otherwise). Like ``global``, every event counts under exactly one value of each."""
ROLLUP_KEY = ("grain", "bucket", "scope_type", "scope_id", "model", "provider", "deployment_id")
METRICS = (
    "requests",
    "successful_requests",
    "failed_requests",
    "unpriced_requests",
    "estimated_requests",
    "cost_nanos",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cache_hits",
    "saved_nanos",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_Key = tuple[int, int, str, str, str, str, str]
_Attribution = tuple[
    int, tuple[str | None, ...], tuple[str, ...], str | None, str | None, str | None, str | None, str
]
"""bucket, scope ids, tags, model, provider, deployment, endpoint, mode."""
_TYPES = tuple(t for t, _ in ATTRIBUTED)
_TOTAL_OF = tuple((TOTALS[t], i) for i, t in enumerate(_TYPES) if t in TOTALS)
"""(total scope type, index of its scope in an event's ids)."""
_ids: Callable[[SpendEvent], tuple[str | None, ...]] = attrgetter(*(c for _, c in ATTRIBUTED))
"""An event's ids of the :data:`ATTRIBUTED` scope types (its fields are named as the columns)."""


def mode_of(batch_id: str | None) -> str:
    """The ``mode`` breakdown of an event: ``batch`` when a batch's settlement, else ``realtime``."""
    return "realtime" if batch_id is None else "batch"


def _epoch_seconds(at: datetime) -> int:
    delta = at.astimezone(UTC) - _EPOCH
    return delta.days * 86400 + delta.seconds


def rollup_deltas(events: Iterable[SpendEvent]) -> list[dict[str, int | str]]:
    """The rollup increments for ``events``, one per distinct rollup key, sorted by key
    (a stable lock order for concurrent writers)."""
    # Aggregate each event once per distinct attribution first (many events share one),
    # then fan out to the scope types and grains.
    per_event: dict[_Attribution, list[int]] = {}
    success, error = EventStatus.SUCCESS, EventStatus.ERROR
    for e in events:
        delta = e.occurred_at - _EPOCH
        bucket = (delta.days * 86400 + delta.seconds) // 900 * 900
        attribution = (
            bucket, _ids(e), e.tags, e.model, e.provider, e.deployment_id, e.endpoint, mode_of(e.batch_id),
        )  # fmt: skip
        u = e.usage
        acc = per_event.get(attribution)
        if acc is None:
            per_event[attribution] = [
                1, e.status is success, e.status is error, e.unpriced, e.estimated, e.cost_nanos,
                u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                u.reasoning_tokens, e.latency_ms or 0, e.cache_hit, e.saved_nanos,
            ]  # fmt: skip
        else:
            acc[0] += 1
            acc[1] += e.status is success
            acc[2] += e.status is error
            acc[3] += e.unpriced
            acc[4] += e.estimated
            acc[5] += e.cost_nanos
            acc[6] += u.input_tokens
            acc[7] += u.output_tokens
            acc[8] += u.cache_read_tokens
            acc[9] += u.cache_write_tokens
            acc[10] += u.reasoning_tokens
            acc[11] += e.latency_ms or 0
            acc[12] += e.cache_hit
            acc[13] += e.saved_nanos

    # Fan out to the scope types at the finest grain, then coarsen the (smaller) result.
    fine: dict[_Key, list[int]] = {}
    for attr, values in per_event.items():
        bucket, ids, tags, model, provider, deployment, endpoint, mode = attr
        m, p = model or "", provider or ""
        keys: list[_Key] = [
            (900, bucket, "global", "", m, p, deployment or ""),
            (900, bucket, "endpoint", endpoint or "", m, p, ""),
            (900, bucket, "mode", mode, m, p, ""),
        ]
        keys.extend((900, bucket, t, i or "", m, p, "") for t, i in zip(_TYPES, ids, strict=True))
        keys.extend((900, bucket, t, ids[i] or "", "", "", "") for t, i in _TOTAL_OF)
        if tags:
            keys.extend((900, bucket, "tag", t, m, p, "") for t in tags)
        else:
            keys.append((900, bucket, "tag", "", m, p, ""))
        for key in keys:
            acc = fine.get(key)
            fine[key] = list(map(add, acc, values)) if acc is not None else [int(v) for v in values]
    merged = dict(fine)
    for grain in GRAINS[1:]:
        for (_, bucket, *rest), values in fine.items():
            coarse: _Key = (grain, bucket // grain * grain, *rest)  # type: ignore[assignment]
            acc = merged.get(coarse)
            merged[coarse] = list(map(add, acc, values)) if acc is not None else values
    out: list[dict[str, int | str]] = []
    for key in sorted(merged):
        row: dict[str, int | str] = dict(zip(ROLLUP_KEY, key, strict=True))
        row.update(zip(METRICS, merged[key], strict=True))
        out.append(row)
    return out

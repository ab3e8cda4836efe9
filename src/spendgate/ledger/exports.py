"""Spend exports, CSV and FOCUS 1.2, streamed in constant memory: the one row generator
behind ``GET /global/spend/export`` and ``spendgate spend export``.

Why streamed: an export covers any range (a year of traffic is millions of events), so
rows are read through a server-side cursor (``stream_results``, ``yield_per``) and written
out a chunk at a time; nothing holds the whole range. Two shapes:

* **per event** (no ``group_by``): one CSV line per spend event (LiteLLM's spend-log field
  names), or one FOCUS row per event per meter (:mod:`spendgate.ledger.focus`), read from
  ``spend_events`` in ``occurred_at`` order, narrowed by a caller's WHERE clause;
* **grouped** (CSV only): rows aggregated from the rollups by
  :func:`spendgate.ledger.reports.spend_report` (per period in the zone, per group); their
  number depends on periods × groups, never on the number of events.

Money is exact: ``cost_nanos`` integers, USD as exact decimal text (never a float).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Row, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.money import usd_text
from spendgate.core.periods import get_timezone
from spendgate.core.pricing.breakdown import ITEMS
from spendgate.core.usage.model import Usage
from spendgate.ledger.focus import FOCUS_COLUMNS, FocusEvent, ListPricer, book_list_pricer, focus_rows
from spendgate.ledger.local_days import day_range
from spendgate.ledger.reports import DIMENSIONS, SCOPE_DIMENSIONS, Totals, spend_report
from spendgate.stores.database.models import SpendEventRow, Team, VirtualKey

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "GRANULARITIES",
    "GROUPED_METRICS",
    "check_group_by",
    "day_range",
    "export_chunks",
    "export_filename",
]

FORMATS = ("csv", "focus")
GRANULARITIES = ("hour", "day", "week", "month")
_USAGE_INTS = tuple(f.name for f in fields(Usage) if f.type == "int")
_CHUNK_ROWS = 500
_YIELD_PER = 1000

CSV_COLUMNS: tuple[str, ...] = (
    "request_id",
    "startTime",
    "endTime",
    "call_type",
    "api_key",
    "spend",
    "cost_nanos",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "model",
    "model_group",
    "model_id",
    "custom_llm_provider",
    "user",
    "team_id",
    "team_alias",
    "organization_id",
    "end_user",
    "request_tags",
    "status",
    "service_tier",
    "unpriced",
    "unpriced_reason",
    "estimated",
    "catalogue_version",
    "price_source",
    "batch_id",
    "operation_id",
    "request_duration_ms",
    *(f"cost_{item}" for item in ITEMS),
)
"""The per-event CSV: LiteLLM_SpendLogs names, then spendgate's itemized cost (USD)."""

GROUPED_METRICS: tuple[str, ...] = ("spend", *(f.name for f in fields(Totals)))
"""A grouped row's metrics: USD, then every :class:`~spendgate.ledger.reports.Totals` field."""


def check_group_by(group_by: Sequence[str]) -> None:
    """Refuse, before anything is streamed, a grouping the rollups cannot answer (the rules
    of :func:`spendgate.ledger.reports.spend_report`).

    Raises:
        ValueError: an unknown or repeated dimension, two scope dimensions, or a scope
            dimension with ``deployment``.
    """
    for dim in group_by:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; choose from {', '.join(DIMENSIONS)}")
    if len(set(group_by)) != len(group_by):
        raise ValueError("a dimension is repeated in group_by")
    scopes = [d for d in group_by if d in SCOPE_DIMENSIONS]
    if len(scopes) > 1:
        raise ValueError(f"cannot group by both {scopes[0]!r} and {scopes[1]!r}: choose one scope dimension")
    if scopes and "deployment" in group_by:
        raise ValueError(f"cannot group by both {scopes[0]!r} and 'deployment'")


def export_filename(fmt: str, start: date, end: date, group_by: Sequence[str] = ()) -> str:
    """The Content-Disposition file name, e.g. ``spendgate-focus-2026-11-01-2026-11-30.csv``."""
    grouped = "-by-" + "-".join(group_by) if group_by else ""
    return f"spendgate-{fmt}{grouped}-{start.isoformat()}-{end.isoformat()}.csv"


def _cell(value: Any) -> Any:
    if type(value) is int:  # most cells: counts and tokens
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS and not _NUMBER.fullmatch(value):
        # A spreadsheet runs a cell that starts like a formula; text in a row can come
        # from a caller (an end customer's id, a tag, a team alias), so it is shown as text
        # (OWASP's CSV injection advice). Numbers, negative amounts included, stay numbers.
        return "'" + value
    return value


_FORMULA_STARTS = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?")


class _Writer:
    """CSV lines into a text buffer, handed out as UTF-8 chunks."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.rows = 0

    def row(self, values: Iterable[Any]) -> None:
        self.writer.writerow([_cell(v) for v in values])
        self.rows += 1

    def take(self) -> bytes:
        data = self.buffer.getvalue().encode()
        self.buffer.seek(0)
        self.buffer.truncate()
        self.rows = 0
        return data


def _events_query(start: datetime, end: datetime, where: ColumnElement[bool] | None) -> Select[Any]:
    columns = [c for c in SpendEventRow.__table__.c if c.name not in ("messages", "response")]
    stmt = (
        select(*columns, VirtualKey.token.label("key_hash"), Team.team_alias.label("team_alias"))
        .outerjoin(VirtualKey, VirtualKey.key_id == SpendEventRow.api_key)
        .outerjoin(Team, Team.team_id == SpendEventRow.team_id)
        .where(SpendEventRow.occurred_at >= start, SpendEventRow.occurred_at < end)
        .order_by(SpendEventRow.occurred_at, SpendEventRow.event_id)
    )
    return stmt.where(where) if where is not None else stmt


async def _events(
    engine: AsyncEngine, start: datetime, end: datetime, where: ColumnElement[bool] | None
) -> AsyncIterator[Row[Any]]:
    """Every event of the range (its columns, ``key_hash``, ``team_alias``), streamed
    through a server-side cursor."""
    stmt = _events_query(start, end, where).execution_options(yield_per=_YIELD_PER)
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for partition in result.partitions():
            for row in partition:
                yield row


def _usage(e: Row[Any]) -> Usage:
    values: dict[str, Any] = {name: _n(e, name) for name in _USAGE_INTS}
    return Usage(
        **values,
        seconds=Decimal(e.seconds_micros or 0).scaleb(-6),
        image_size=e.image_size,
        image_quality=e.image_quality,
        search_context_size=e.search_context_size,
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _n(e: Row[Any], name: str) -> int:
    """A usage count column (declared from :class:`Usage`'s fields, so not typed on the model)."""
    value = getattr(e, name)
    return int(value) if value else 0


def _csv_row(e: Row[Any], zone: tzinfo) -> list[Any]:
    ended = _aware(e.occurred_at)
    started = _aware(e.started_at) if e.started_at is not None else ended
    return [
        e.event_id,
        started.astimezone(zone).isoformat(),
        ended.astimezone(zone).isoformat(),
        e.endpoint,
        e.key_hash or e.api_key,
        usd_text(e.cost_nanos),
        e.cost_nanos,
        _n(e, "input_tokens") + _n(e, "output_tokens"),
        _n(e, "input_tokens"),
        _n(e, "output_tokens"),
        _n(e, "cache_read_tokens"),
        _n(e, "cache_write_tokens"),
        _n(e, "reasoning_tokens"),
        e.model,
        e.requested_model,
        e.deployment_id,
        e.provider,
        e.user_id,
        e.team_id,
        e.team_alias,
        e.organization_id,
        e.end_user,
        orjson.dumps(list(e.request_tags or [])).decode(),
        e.status,
        e.service_tier,
        e.unpriced,
        e.unpriced_reason,
        e.estimated,
        e.catalogue_version,
        e.price_source,
        e.batch_id,
        e.operation_id,
        e.latency_ms,
        *(usd_text(getattr(e, f"cost_{item}_nanos") or 0) for item in ITEMS),
    ]


def _focus_event(e: Row[Any]) -> FocusEvent:
    return FocusEvent(
        event_id=e.event_id,
        occurred_at=_aware(e.occurred_at),
        cost_nanos=e.cost_nanos,
        cost_items={item: getattr(e, f"cost_{item}_nanos") or 0 for item in ITEMS},
        usage=_usage(e),
        unpriced=e.unpriced,
        unpriced_reason=e.unpriced_reason,
        estimated=e.estimated,
        status=e.status,
        service_tier=e.service_tier,
        catalogue_version=e.catalogue_version,
        price_source=e.price_source,
        model=e.model,
        resolved_model=e.resolved_model,
        requested_model=e.requested_model,
        provider=e.provider,
        deployment_id=e.deployment_id,
        api_key_hash=e.key_hash or e.api_key,
        user_id=e.user_id,
        team_id=e.team_id,
        team_alias=e.team_alias,
        organization_id=e.organization_id,
        end_user=e.end_user,
        tags=tuple(e.request_tags or ()),
        batch_id=e.batch_id,
        operation_id=e.operation_id,
    )


async def _per_event(
    engine: AsyncEngine,
    fmt: str,
    start: datetime,
    end: datetime,
    zone: tzinfo,
    where: ColumnElement[bool] | None,
    list_pricer: ListPricer,
) -> AsyncIterator[bytes]:
    out = _Writer()
    out.row(CSV_COLUMNS if fmt == "csv" else FOCUS_COLUMNS)
    yield out.take()
    async for event in _events(engine, start, end, where):
        if fmt == "csv":
            out.row(_csv_row(event, zone))
        else:
            for row in focus_rows(
                _focus_event(event),
                billing_period=(start, end),
                zone=zone,
                list_pricer=list_pricer,
            ):
                out.row(row)
        if out.rows >= _CHUNK_ROWS:
            yield out.take()
    if out.rows:
        yield out.take()


async def _key_hashes(engine: AsyncEngine, key_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """key_id → (the key's current hash, its alias), for the keys that still exist."""
    ids = sorted({k for k in key_ids if k})
    found: dict[str, tuple[str, str | None]] = {}
    async with engine.connect() as conn:
        for i in range(0, len(ids), 500):
            rows = await conn.execute(
                select(VirtualKey.key_id, VirtualKey.token, VirtualKey.key_alias).where(
                    VirtualKey.key_id.in_(ids[i : i + 500])
                )
            )
            found.update({str(k): (str(t), a) for k, t, a in rows})
    return found


async def _grouped(
    engine: AsyncEngine,
    start: datetime,
    end: datetime,
    tz: str,
    zone: tzinfo,
    group_by: Sequence[str],
    granularity: str,
    allowed: Mapping[str, frozenset[str]] | None,
    top: int | None = None,
) -> AsyncIterator[bytes]:
    scope_ids = None
    if top is not None and allowed is not None:
        # The rest row must sum only what the caller may read: narrowed in SQL, not after.
        scope_ids, allowed = allowed[group_by[0]], None
    report = await spend_report(
        engine,
        start=start,
        end=end,
        group_by=list(group_by),
        granularity=granularity,
        tz=tz,
        scope_ids=scope_ids,
        top=top,
    )
    cols = report.columns
    hashes = await _key_hashes(engine, cols["key"]) if "key" in group_by else {}
    out = _Writer()
    # Keys are shown as their current hash, followed by their alias (a key_alias column).
    names = [n for d in group_by for n in ((d, "key_alias") if d == "key" else (d,))]
    out.row(["period_start", "period_end", *names, *GROUPED_METRICS, *(["other_groups"] if top else [])])
    yield out.take()
    shown: dict[Any, tuple[str, str]] = {}  # each period's ends as text, once (rows repeat them)
    for i in range(report.row_count):
        if allowed is not None and not any(cols[d][i] in ids for d, ids in allowed.items() if d in cols):
            continue
        period = cols["period"][i]
        ends = shown.get(period)
        if ends is None:
            ends = shown[period] = (
                period.start.astimezone(zone).isoformat(),
                period.end.astimezone(zone).isoformat(),
            )
        values = [cols[d][i] for d in group_by]
        if "key" in group_by:
            k = group_by.index("key")
            token, alias = hashes.get(values[k], (values[k], None)) if values[k] else (None, None)
            values[k : k + 1] = [token, alias]
        out.row(
            [
                *ends,
                *values,
                usd_text(cols["cost_nanos"][i]),
                *(cols[m][i] for m in GROUPED_METRICS[1:]),
                *([report.other_groups if cols["other"][i] else 0] if top else []),
            ]
        )
        if out.rows >= _CHUNK_ROWS:
            yield out.take()
    if out.rows:
        yield out.take()


def export_chunks(
    engine: AsyncEngine,
    *,
    fmt: str,
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    group_by: Sequence[str] = (),
    granularity: str = "day",
    where: ColumnElement[bool] | None = None,
    allowed: Mapping[str, frozenset[str]] | None = None,
    list_pricer: ListPricer | None = None,
    top: int | None = None,
) -> AsyncIterator[bytes]:
    """The export as UTF-8 CSV chunks (header first), read when iterated.

    Args:
        engine: the ledger's database; a connection is opened when iteration starts.
        fmt: ``csv`` or ``focus``.
        start, end: the UTC instants of the range ``[start, end)``.
        tz: IANA zone of the times shown (CSV), of the charge hours (FOCUS), of the periods
            (grouped).
        group_by: report dimensions (:data:`spendgate.ledger.reports.DIMENSIONS`); CSV only.
        granularity: the grouped rows' period (``hour``, ``day``, ``week``, ``month``).
        where: narrows the per-event read (who may read what; filters). Bound parameters.
        allowed: grouped only: keep a row only if one of its dimensions (``key``, ``user``,
            ``team``) holds an id of that dimension's set (None: every row).
        top: grouped by one dimension only: its top values by cost over the range, the
            others summed per period into a row with an empty value and the column
            ``other_groups`` (how many values it sums; 0 on the other rows).
        list_pricer: FOCUS ``ListCost``; default the process-wide price book.

    Raises:
        ValueError: an unknown format, FOCUS with ``group_by``, a bad dimension or zone.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if group_by and fmt != "csv":
        raise ValueError("FOCUS rows are per event and meter: group_by applies to CSV exports only")
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; choose from {', '.join(GRANULARITIES)}")
    zone = get_timezone(tz)
    if group_by:
        check_group_by(group_by)
        return _grouped(engine, start, end, tz, zone, group_by, granularity, allowed, top)
    return _per_event(engine, fmt, start, end, zone, where, list_pricer or book_list_pricer())

"""LiteLLM's spend endpoints (``/spend/*``, ``/global/spend*``), with LiteLLM's paths,
parameters and response fields (issue #13; docs/spend-api.md, "Spend endpoints").

This module serves the ``/spend/*`` reads and registers every spend endpoint
(:data:`ENDPOINTS`); the ``/global/spend*`` handlers are in :mod:`spendgate.admin.spend_global`.
Every figure is summed in integer nano-USD and shown as an exact JSON number of USD. The
aggregates read the rollups (:mod:`spendgate.ledger.spend_reads`); only ``/spend/logs`` reads
raw ``spend_events``, bounded by time or request id. Dates are local days in the
``timezone`` parameter (:class:`~spendgate.admin.spend_range.DayRange`). Who may read what is
decided by :mod:`spendgate.admin.spend_access` alone: a filter naming someone else's key,
user or team is a 403; reads that name nothing are narrowed to the caller's keys, users or
teams; tag and customer reads are for admins only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import ColumnElement, select
from starlette.responses import Response

from spendgate.admin._http import Context, Endpoint, endpoint
from spendgate.admin.schemas.spend import (
    GlobalSpendKeysQuery,
    GlobalSpendLogsQuery,
    GlobalSpendModelsQuery,
    GlobalSpendReportQuery,
    GlobalSpendTagsQuery,
    SpendKeysQuery,
    SpendLogsQuery,
    SpendRangeQuery,
    SpendUsersQuery,
)
from spendgate.admin.spend_access import resolve_key_ref, spend_access
from spendgate.admin.spend_global import (
    global_spend,
    global_spend_keys,
    global_spend_logs,
    global_spend_models,
    global_spend_report,
    global_spend_tags,
    global_spend_teams,
    tag_slices,
)
from spendgate.admin.spend_logs import NEXT_CURSOR_HEADER, decode_cursor, encode_cursor, key_hashes, log_row
from spendgate.admin.spend_lookup import by_spend
from spendgate.admin.spend_range import DayRange
from spendgate.admin.views import keys_out, usd, users_out
from spendgate.http.errors import InvalidField
from spendgate.ledger.spend_reads import daily_log_summary, lifetime_spend, log_page
from spendgate.stores.database.models import SpendEventRow, User, VirtualKey

__all__ = ["ENDPOINTS"]


# -- /spend/logs ----------------------------------------------------------------------------


async def spend_logs(ctx: Context, q: SpendLogsQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    where: list[ColumnElement[bool]] = []
    if q.api_key is not None:
        key_id = await resolve_key_ref(ctx.repo, q.api_key)
        access.check_key(key_id)
        where.append(SpendEventRow.api_key == key_id)
    if q.user_id is not None:
        access.check_user(q.user_id)
        where.append(SpendEventRow.user_id == q.user_id)
    if q.request_id is not None:
        where.append(SpendEventRow.event_id == q.request_id)
    narrowed = access.events_clause()
    if narrowed is not None:
        where.append(narrowed)
    session = ctx.repo.session
    dated = q.start_date is not None and q.end_date is not None
    if dated:
        days = DayRange(q, ctx.now)
        if q.summarize:
            if q.cursor is not None:
                raise InvalidField("cursor: pages the rows of summarize=false", param="cursor")
            return await _summary(ctx, days, where)
        where += [SpendEventRow.occurred_at >= days.start, SpendEventRow.occurred_at < days.end]
    elif q.request_id is None and (q.start_date is not None or q.end_date is not None):
        missing = "end_date" if q.end_date is None else "start_date"
        raise InvalidField(f"{missing}: give both start_date and end_date", param=missing)
    after = None
    if q.cursor is not None:
        if q.page > 1:
            raise InvalidField("cursor: a cursor replaces page; give one or the other", param="cursor")
        after = decode_cursor(q.cursor)
    offset = (q.page - 1) * q.page_size
    rows = await log_page(session, where=where, limit=q.page_size, offset=offset, after=after)
    hashes = await key_hashes(session, [r.api_key for r in rows if r.api_key])
    # LiteLLM's body (a list of rows); where the next page starts goes in a header.
    headers = {NEXT_CURSOR_HEADER: encode_cursor(rows[-1])} if len(rows) == q.page_size else None
    return Response(
        orjson.dumps([log_row(r, hashes) for r in rows]), media_type="application/json", headers=headers
    )


async def _summary(ctx: Context, days: DayRange, where: list[ColumnElement[bool]]) -> list[dict[str, Any]]:
    """LiteLLM's summarize=true: per day with spend, ``spend`` and the day's spend per key
    hash (top-level), per user (``users``) and per model (``models``); after the last day
    with spend, every day to end_date with zero."""
    data = await daily_log_summary(ctx.repo.session, where=where, boundaries=days.boundaries)
    hashes = await key_hashes(ctx.repo.session, [k for _, k, _, _, _ in data if k])
    per_day: dict[int, dict[str, Any]] = {}
    for i, key, user, model, nanos in sorted(data, key=lambda r: r[0]):
        day = per_day.setdefault(
            i, {"spend": 0, "users": defaultdict(int), "models": defaultdict(int), "keys": defaultdict(int)}
        )
        day["spend"] += nanos
        day["keys"][hashes.get(key, key) if key else None] += nanos
        day["users"][user] += nanos
        day["models"][model] += nanos
    out: list[dict[str, Any]] = []
    for i, day in per_day.items():
        row: dict[str, Any] = {"startTime": days.days[i].isoformat(), "spend": usd(day["spend"])}
        row.update({str(k): usd(v) for k, v in day["keys"].items()})
        row["users"] = {str(k): usd(v) for k, v in day["users"].items()}
        row["models"] = {str(k): usd(v) for k, v in day["models"].items()}
        out.append(row)
    if per_day:
        for d in days.days[max(per_day) + 1 :]:
            out.append({"startTime": d.isoformat(), "spend": usd(0), "users": {}, "models": {}})
    return out


# -- entity spend: /spend/keys, /spend/users -------------------------------------------------


async def _with_lifetime(
    ctx: Context, scope: str, rows: list[dict[str, Any]], ids: list[str]
) -> list[dict[str, Any]]:
    """Each entity row (``rows[i]`` is ``ids[i]``'s) with its lifetime spend as ``total_spend``
    (and ``spend`` where the row has none), highest first."""
    lifetime = await lifetime_spend(ctx.repo.session, scope, ids)
    for row, entity in zip(rows, ids, strict=True):
        row["total_spend"] = usd(lifetime[entity])
        row.setdefault("spend", usd(lifetime[entity]))
    return by_spend(rows, [lifetime[entity] for entity in ids])


async def spend_keys(ctx: Context, _q: SpendKeysQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    stmt = select(VirtualKey)
    if not access.everything:
        stmt = stmt.where(VirtualKey.key_id.in_(sorted(access.key_ids)))
    keys = list(await ctx.repo.session.scalars(stmt.order_by(VirtualKey.key_id)))
    return await _with_lifetime(ctx, "key", await keys_out(ctx.repo, keys), [k.key_id for k in keys])


async def spend_users(ctx: Context, q: SpendUsersQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    access.check_user(q.user_id)
    stmt = select(User)
    if q.user_id is not None:
        stmt = stmt.where(User.user_id == q.user_id)
    elif not access.everything:
        stmt = stmt.where(User.user_id.in_(sorted(access.user_ids)))
    users = list(await ctx.repo.session.scalars(stmt.order_by(User.user_id)))
    return await _with_lifetime(ctx, "user", await users_out(ctx.repo, users), [u.user_id for u in users])


# -- tags ------------------------------------------------------------------------------------


async def spend_tags(ctx: Context, q: SpendRangeQuery) -> Any:
    return [
        {
            "individual_request_tag": s.scope_id,
            "log_count": s.totals.requests,
            "total_spend": usd(s.totals.cost_nanos),
        }
        for s in await tag_slices(ctx, q, None)
    ]


async def exchange_rates(ctx: Context, q: SpendKeysQuery) -> Any:
    """``GET /exchange_rates``: the display currency and every dated rate of the rates file."""
    if ctx.settings.currency is None:
        return {"display_currency": None, "source": None, "error": None, "rates": []}
    return ctx.settings.currency.rates()


def _read(path: str, handler: Any, summary: str, query: Any) -> Endpoint:
    return endpoint(path, handler, summary, query=query, write=False, plain_keys=True)


ENDPOINTS: tuple[Endpoint, ...] = (
    _read(
        "/spend/logs",
        spend_logs,
        "Spend logs (LiteLLM_SpendLogs rows), or spend per day with summarize",
        SpendLogsQuery,
    ),
    _read("/spend/keys", spend_keys, "Every key the caller may read, with its spend", SpendKeysQuery),
    _read("/spend/users", spend_users, "Users with their spend", SpendUsersQuery),
    _read("/spend/tags", spend_tags, "Spend and request count per request tag", SpendRangeQuery),
    _read(
        "/global/spend", global_spend, "Total spend over the range (default: last 30 days)", SpendRangeQuery
    ),
    _read(
        "/global/spend/logs", global_spend_logs, "Spend per day (default: last 30 days)", GlobalSpendLogsQuery
    ),
    _read("/global/spend/keys", global_spend_keys, "The top keys by spend", GlobalSpendKeysQuery),
    _read("/global/spend/teams", global_spend_teams, "Spend per team per day", SpendRangeQuery),
    _read("/global/spend/models", global_spend_models, "The top models by spend", GlobalSpendModelsQuery),
    _read("/global/spend/tags", global_spend_tags, "Spend per tag", GlobalSpendTagsQuery),
    _read(
        "/exchange_rates",
        exchange_rates,
        "The display currency and its dated exchange rates (the ledger stays in USD)",
        SpendKeysQuery,
    ),
    _read(
        "/global/spend/report",
        global_spend_report,
        "Spend per day per team or customer (by model), or per key (by model)",
        GlobalSpendReportQuery,
    ),
)

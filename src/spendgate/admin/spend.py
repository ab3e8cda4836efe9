"""LiteLLM's spend endpoints (``/spend/*``, ``/global/spend*``), with LiteLLM's paths,
parameters and response fields (issue #13; docs/spend-api.md, "Spend endpoints").

Every figure is summed in integer nano-USD and shown as an exact JSON number of USD. The
aggregates read the rollups (:mod:`spendgate.ledger.spend_reads` over
:func:`~spendgate.ledger.reports.spend_report`); only ``/spend/logs`` reads raw
``spend_events``, bounded by time or request id. Dates are local days in the
``timezone`` parameter. Who may read what is decided by :mod:`spendgate.admin.spend_access`
alone: a filter naming someone else's key, user or team is a 403; reads that name nothing
are narrowed to the caller's keys (global reads) or the teams they administer (team
reads); tag and customer reads are for admins only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select

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
from spendgate.admin.spend_access import SpendAccess, resolve_key_ref, spend_access
from spendgate.admin.spend_logs import key_hashes, log_row
from spendgate.admin.views import keys_out, usd, users_out
from spendgate.core.periods import Window, get_timezone, period_for
from spendgate.http.errors import InvalidField
from spendgate.ledger.spend_reads import Slice, daily_log_summary, lifetime_spend, log_page, read_slices
from spendgate.stores.database.models import SpendEventRow, Team, User, VirtualKey

__all__ = ["ENDPOINTS"]

DEFAULT_DAYS = 30
"""Without dates, LiteLLM's views cover the last 30 days and today."""
MAX_DAYS = 3660
_DAY = Window("day")


class DayRange:
    """Local days ``first..last`` in ``tz``, and their UTC boundaries ``[start, end)``."""

    def __init__(self, q: SpendRangeQuery | GlobalSpendReportQuery, now: datetime) -> None:
        zone = get_timezone(q.timezone)
        today = now.astimezone(zone).date()
        self.tz = q.timezone
        self.first = (
            date.fromisoformat(q.start_date) if q.start_date else today - timedelta(days=DEFAULT_DAYS)
        )
        self.last = date.fromisoformat(q.end_date) if q.end_date else today
        if self.last < self.first:
            raise InvalidField("end_date: is before start_date", param="end_date")
        if (self.last - self.first).days >= MAX_DAYS:
            raise InvalidField(f"end_date: a range is at most {MAX_DAYS} days", param="end_date")
        self.days = [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]
        self.boundaries = [self._start(d) for d in self.days] + [self._start(self.last + timedelta(days=1))]
        self.start, self.end = self.boundaries[0], self.boundaries[-1]

    def _start(self, day: date) -> datetime:
        # Local noon always exists; the day's period starts at its real local midnight.
        return period_for(_DAY, datetime.combine(day, time(12), get_timezone(self.tz)), self.tz).start

    def day_start(self, day: date) -> str:
        """The local start of ``day`` in ISO 8601 with its offset (LiteLLM's ``group_by_day``)."""
        return self._start(day).astimezone(get_timezone(self.tz)).isoformat()


async def _access(ctx: Context) -> SpendAccess:
    return await spend_access(ctx.repo, ctx.caller)


def _keys_scope(access: SpendAccess) -> tuple[str, frozenset[str] | None]:
    """Global reads: everything for an admin, else the sum of the caller's keys."""
    return ("global", None) if access.everything else ("key", access.key_ids)


async def _key_rows(ctx: Context, key_ids: Iterable[str]) -> dict[str, VirtualKey]:
    ids = sorted(set(key_ids))
    if not ids:
        return {}
    rows = await ctx.repo.session.scalars(select(VirtualKey).where(VirtualKey.key_id.in_(ids)))
    return {vk.key_id: vk for vk in rows}


async def _team_names(ctx: Context, team_ids: Iterable[str], none: str) -> dict[str | None, str]:
    ids = sorted({t for t in team_ids if t})
    names: dict[str | None, str] = {None: none}
    if ids:
        rows = await ctx.repo.session.execute(
            select(Team.team_id, Team.team_alias).where(Team.team_id.in_(ids))
        )
        found = {tid: alias for tid, alias in rows.all()}
        names.update({tid: found.get(tid) or tid for tid in ids})
    return names


def _by_spend(rows: list[dict[str, Any]], nanos: dict[int, int]) -> list[dict[str, Any]]:
    order = sorted(range(len(rows)), key=lambda i: -nanos[i])
    return [rows[i] for i in order]


# -- /spend/logs ----------------------------------------------------------------------------


async def spend_logs(ctx: Context, q: SpendLogsQuery) -> Any:
    access = await _access(ctx)
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
            return await _summary(ctx, days, where)
        where += [SpendEventRow.occurred_at >= days.start, SpendEventRow.occurred_at < days.end]
    elif q.request_id is None and (q.start_date is not None or q.end_date is not None):
        missing = "end_date" if q.end_date is None else "start_date"
        raise InvalidField(f"{missing}: give both start_date and end_date", param=missing)
    rows = await log_page(session, where=where, limit=q.page_size, offset=(q.page - 1) * q.page_size)
    hashes = await key_hashes(session, [r.api_key for r in rows if r.api_key])
    return [log_row(r, hashes) for r in rows]


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


async def spend_keys(ctx: Context, _q: SpendKeysQuery) -> Any:
    access = await _access(ctx)
    stmt = select(VirtualKey)
    if not access.everything:
        stmt = stmt.where(VirtualKey.key_id.in_(sorted(access.key_ids)))
    keys = list(await ctx.repo.session.scalars(stmt.order_by(VirtualKey.key_id)))
    lifetime = await lifetime_spend(ctx.repo.session, "key", [k.key_id for k in keys])
    rows = await keys_out(ctx.repo, keys)
    for row, vk in zip(rows, keys, strict=True):
        row["total_spend"] = usd(lifetime[vk.key_id])
        row.setdefault("spend", usd(lifetime[vk.key_id]))
    return _by_spend(rows, {i: lifetime[k.key_id] for i, k in enumerate(keys)})


async def spend_users(ctx: Context, q: SpendUsersQuery) -> Any:
    access = await _access(ctx)
    access.check_user(q.user_id)
    stmt = select(User)
    if q.user_id is not None:
        stmt = stmt.where(User.user_id == q.user_id)
    elif not access.everything:
        stmt = stmt.where(User.user_id.in_(sorted(access.user_ids)))
    users = list(await ctx.repo.session.scalars(stmt.order_by(User.user_id)))
    lifetime = await lifetime_spend(ctx.repo.session, "user", [u.user_id for u in users])
    rows = await users_out(ctx.repo, users)
    for row, u in zip(rows, users, strict=True):
        row["total_spend"] = usd(lifetime[u.user_id])
        row.setdefault("spend", usd(lifetime[u.user_id]))
    return _by_spend(rows, {i: lifetime[u.user_id] for i, u in enumerate(users)})


# -- tags ------------------------------------------------------------------------------------


async def _tag_slices(ctx: Context, q: SpendRangeQuery, tags: set[str] | None) -> list[Slice]:
    (await _access(ctx)).check_admin("spend per tag")
    days = DayRange(q, ctx.now)
    slices = await read_slices(
        ctx.repo.session, start=days.start, end=days.end, tz=days.tz, scope="tag", ids=tags, by_scope=True
    )
    return sorted(
        (s for s in slices if s.scope_id is not None), key=lambda s: (-s.totals.cost_nanos, s.scope_id or "")
    )


async def spend_tags(ctx: Context, q: SpendRangeQuery) -> Any:
    return [
        {
            "individual_request_tag": s.scope_id,
            "log_count": s.totals.requests,
            "total_spend": usd(s.totals.cost_nanos),
        }
        for s in await _tag_slices(ctx, q, None)
    ]


async def global_spend_tags(ctx: Context, q: GlobalSpendTagsQuery) -> Any:
    wanted = {t.strip() for t in (q.tags or "").split(",") if t.strip()}
    tags = None if not wanted or "all-tags" in wanted else wanted
    return {
        "spend_per_tag": [
            {"name": s.scope_id, "spend": usd(s.totals.cost_nanos), "log_count": s.totals.requests}
            for s in await _tag_slices(ctx, q, tags)
        ]
    }


# -- /global/spend* --------------------------------------------------------------------------


async def global_spend(ctx: Context, q: SpendRangeQuery) -> Any:
    access = await _access(ctx)
    days = DayRange(q, ctx.now)
    scope, ids = _keys_scope(access)
    slices = await read_slices(
        ctx.repo.session, start=days.start, end=days.end, tz=days.tz, scope=scope, ids=ids
    )
    spent = usd(sum(s.totals.cost_nanos for s in slices))
    return {"spend": spent, "max_budget": usd(ctx.settings.global_max_budget_nanos)}


async def global_spend_logs(ctx: Context, q: GlobalSpendLogsQuery) -> Any:
    access = await _access(ctx)
    days = DayRange(q, ctx.now)
    scope, ids = _keys_scope(access)
    hash_of = None
    if q.api_key is not None:
        key_id = await resolve_key_ref(ctx.repo, q.api_key)
        access.check_key(key_id)
        scope, ids = "key", frozenset({key_id})
        vk = (await _key_rows(ctx, [key_id])).get(key_id)
        hash_of = vk.token if vk is not None else key_id
    slices = await read_slices(
        ctx.repo.session, start=days.start, end=days.end, tz=days.tz, scope=scope, ids=ids, daily=True
    )
    out = []
    for s in slices:
        row: dict[str, Any] = {
            "date": s.day.isoformat() if s.day else None,
            "spend": usd(s.totals.cost_nanos),
        }
        if hash_of is not None:
            row["api_key"] = hash_of
        out.append(row)
    return out


async def global_spend_keys(ctx: Context, q: GlobalSpendKeysQuery) -> Any:
    access = await _access(ctx)
    days = DayRange(q, ctx.now)
    slices = await read_slices(
        ctx.repo.session,
        start=days.start,
        end=days.end,
        tz=days.tz,
        scope="key",
        ids=None if access.everything else access.key_ids,
        by_scope=True,
    )
    slices.sort(key=lambda s: (-s.totals.cost_nanos, s.scope_id or ""))
    if q.limit is not None:
        slices = slices[: q.limit]
    keys = await _key_rows(ctx, [s.scope_id for s in slices if s.scope_id])
    out = []
    for s in slices:
        vk = keys.get(s.scope_id or "")
        out.append(
            {
                "api_key": vk.token if vk is not None else s.scope_id,
                "total_spend": usd(s.totals.cost_nanos),
                "key_alias": vk.key_alias if vk is not None else None,
                "key_name": vk.key_name if vk is not None else None,
            }
        )
    return out


async def global_spend_models(ctx: Context, q: GlobalSpendModelsQuery) -> Any:
    access = await _access(ctx)
    days = DayRange(q, ctx.now)
    scope, ids = _keys_scope(access)
    slices = await read_slices(
        ctx.repo.session, start=days.start, end=days.end, tz=days.tz, scope=scope, ids=ids, by_model=True
    )
    slices = [s for s in slices if s.model]
    slices.sort(key=lambda s: (-s.totals.cost_nanos, s.model or ""))
    return [
        {"model": s.model, "total_spend": usd(s.totals.cost_nanos), "total_tokens": s.totals.total_tokens}
        for s in slices[: q.limit]
    ]


async def global_spend_teams(ctx: Context, q: SpendRangeQuery) -> Any:
    access = await _access(ctx)
    days = DayRange(q, ctx.now)
    slices = await read_slices(
        ctx.repo.session,
        start=days.start,
        end=days.end,
        tz=days.tz,
        scope="team",
        ids=None if access.everything else access.team_ids,
        daily=True,
        by_scope=True,
    )
    names = await _team_names(ctx, [s.scope_id or "" for s in slices], "Unassigned")
    daily: dict[date | None, dict[str, Any]] = {}
    totals: dict[str, int] = defaultdict(int)
    for s in slices:
        name = names[s.scope_id]
        daily.setdefault(s.day, {})[name] = usd(s.totals.cost_nanos)
        totals[name] += s.totals.cost_nanos
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "daily_spend": [{"date": d.isoformat() if d else None, **v} for d, v in daily.items()],
        "teams": sorted(totals),
        "total_spend_per_team": [{"team_id": name, "total_spend": usd(n)} for name, n in ranked],
    }


# -- /global/spend/report --------------------------------------------------------------------


async def global_spend_report(ctx: Context, q: GlobalSpendReportQuery) -> Any:
    access = await _access(ctx)
    days = DayRange(q, ctx.now)
    session = ctx.repo.session
    if q.customer_id is not None:
        access.check_admin("customer spend", param="customer_id")
    if q.api_key is not None or q.internal_user_id is not None or q.group_by == "api_key":
        if q.api_key is not None:
            key_id = await resolve_key_ref(ctx.repo, q.api_key)
            access.check_key(key_id)
            ids: frozenset[str] | None = frozenset({key_id})
        elif q.internal_user_id is not None:
            access.check_user(q.internal_user_id, param="internal_user_id")
            owned = await session.scalars(
                select(VirtualKey.key_id).where(VirtualKey.user_id == q.internal_user_id)
            )
            ids = frozenset(owned)
        else:
            ids = None if access.everything else access.key_ids
        slices = await read_slices(
            session,
            start=days.start,
            end=days.end,
            tz=days.tz,
            scope="key",
            ids=ids,
            by_scope=True,
            by_model=True,
        )
        return await _by_key(ctx, slices)
    if q.group_by == "customer":
        access.check_admin("customer spend", param="group_by")
        ids = frozenset({q.customer_id}) if q.customer_id is not None else None
        scope, field, none = "customer", "customer", None
    else:
        access.check_team(q.team_id)
        ids = (
            frozenset({q.team_id})
            if q.team_id is not None
            else (None if access.everything else access.team_ids)
        )
        scope, field, none = "team", "team_name", "Unassigned Team"
    slices = await read_slices(
        session,
        start=days.start,
        end=days.end,
        tz=days.tz,
        scope=scope,
        ids=ids,
        daily=True,
        by_scope=True,
        by_model=True,
    )
    names: dict[str | None, Any] = (
        await _team_names(ctx, [s.scope_id or "" for s in slices], "Unassigned Team")
        if scope == "team"
        else {}
    )
    per_day: dict[date | None, dict[str | None, list[Slice]]] = {}
    for s in slices:
        per_day.setdefault(s.day, {}).setdefault(s.scope_id, []).append(s)
    plural = "teams" if scope == "team" else "customers"
    out = []
    for day, groups in per_day.items():
        entries = []
        for sid, parts in groups.items():
            label = names.get(sid, sid) if scope == "team" else (sid if sid is not None else none)
            entries.append(
                {
                    field: label,
                    "total_spend": usd(sum(p.totals.cost_nanos for p in parts)),
                    "metadata": [
                        {
                            "model": p.model,
                            "spend": usd(p.totals.cost_nanos),
                            "total_tokens": p.totals.total_tokens,
                        }
                        for p in parts
                    ],
                }
            )
        out.append({"group_by_day": days.day_start(day) if day else None, plural: entries})
    return out


async def _by_key(ctx: Context, slices: list[Slice]) -> list[dict[str, Any]]:
    """LiteLLM's api_key grouping: per key, its totals and its ``model_details``."""
    keys = await _key_rows(ctx, [s.scope_id for s in slices if s.scope_id])
    grouped: dict[str | None, list[Slice]] = {}
    for s in slices:
        grouped.setdefault(s.scope_id, []).append(s)
    out: list[dict[str, Any]] = []
    nanos: dict[int, int] = {}
    for sid, parts in grouped.items():
        vk = keys.get(sid or "")
        nanos[len(out)] = sum(p.totals.cost_nanos for p in parts)
        out.append(
            {
                "api_key": vk.token if vk is not None else sid,
                "total_cost": usd(nanos[len(out)]),
                "total_input_tokens": sum(p.totals.input_tokens for p in parts),
                "total_output_tokens": sum(p.totals.output_tokens for p in parts),
                "model_details": [
                    {
                        "model": p.model,
                        "total_cost": usd(p.totals.cost_nanos),
                        "total_input_tokens": p.totals.input_tokens,
                        "total_output_tokens": p.totals.output_tokens,
                    }
                    for p in parts
                ],
            }
        )
    return _by_spend(out, nanos)


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
        "/global/spend/report",
        global_spend_report,
        "Spend per day per team or customer (by model), or per key (by model)",
        GlobalSpendReportQuery,
    ),
)

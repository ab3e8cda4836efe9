"""LiteLLM's ``/global/spend*`` endpoints: spend over a range of local days, in total, per day,
per key, team, model or tag, and ``/global/spend/report`` (issue #13; docs/spend-api.md).

Every figure is read from the rollups (:func:`~spendgate.admin.spend_lookup.day_slices`),
summed in integer nano-USD and shown as an exact JSON number of USD. Who may read what is
decided by :mod:`spendgate.admin.spend_access` alone: reads that name nothing are narrowed to
the caller's keys (or the teams they administer, for team reads); a filter naming someone
else's key, user or team is a 403; tag and customer reads are for admins only. The
``/spend/*`` endpoints are in :mod:`spendgate.admin.spend`, which registers both.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select

from spendgate.admin._http import Context
from spendgate.admin.schemas.spend import (
    GlobalSpendKeysQuery,
    GlobalSpendLogsQuery,
    GlobalSpendModelsQuery,
    GlobalSpendReportQuery,
    GlobalSpendTagsQuery,
    SpendRangeQuery,
)
from spendgate.admin.spend_access import resolve_key_ref, spend_access
from spendgate.admin.spend_lookup import by_spend, day_slices, key_name, key_rows, keys_scope, team_names
from spendgate.admin.spend_range import DayRange
from spendgate.admin.views import usd
from spendgate.ledger.spend_reads import Slice
from spendgate.stores.database.models import VirtualKey

__all__ = [
    "global_spend",
    "global_spend_keys",
    "global_spend_logs",
    "global_spend_models",
    "global_spend_report",
    "global_spend_tags",
    "global_spend_teams",
    "tag_slices",
]


async def tag_slices(ctx: Context, q: SpendRangeQuery, tags: set[str] | None) -> list[Slice]:
    """Spend per tag over ``q``'s days (admins only), highest first."""
    (await spend_access(ctx.repo, ctx.caller)).check_admin("spend per tag")
    days = DayRange(q, ctx.now)
    slices = await day_slices(ctx.repo.session, days, "tag", tags, by_scope=True)
    return sorted(
        (s for s in slices if s.scope_id is not None), key=lambda s: (-s.totals.cost_nanos, s.scope_id or "")
    )


async def global_spend_tags(ctx: Context, q: GlobalSpendTagsQuery) -> Any:
    wanted = {t.strip() for t in (q.tags or "").split(",") if t.strip()}
    tags = None if not wanted or "all-tags" in wanted else wanted
    return {
        "spend_per_tag": [
            {"name": s.scope_id, "spend": usd(s.totals.cost_nanos), "log_count": s.totals.requests}
            for s in await tag_slices(ctx, q, tags)
        ]
    }


async def global_spend(ctx: Context, q: SpendRangeQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    days = DayRange(q, ctx.now)
    slices = await day_slices(ctx.repo.session, days, *keys_scope(access))
    spent = sum(s.totals.cost_nanos for s in slices)
    saved = sum(s.totals.saved_nanos for s in slices)
    return {
        "spend": usd(spent),
        "saved_cache_cost": usd(saved),
        "max_budget": usd(ctx.settings.global_max_budget_nanos),
        **_display(ctx, days, spend=spent, saved_cache_cost=saved),
    }


async def global_spend_logs(ctx: Context, q: GlobalSpendLogsQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    days = DayRange(q, ctx.now)
    scope, ids = keys_scope(access)
    hash_of = None
    if q.api_key is not None:
        key_id = await resolve_key_ref(ctx.repo, q.api_key)
        access.check_key(key_id)
        scope, ids = "key", frozenset({key_id})
        hash_of = key_name((await key_rows(ctx.repo.session, [key_id])).get(key_id), key_id)
    out = []
    for s in await day_slices(ctx.repo.session, days, scope, ids, daily=True):
        row: dict[str, Any] = {
            "date": s.day.isoformat() if s.day else None,
            "spend": usd(s.totals.cost_nanos),
        }
        if hash_of is not None:
            row["api_key"] = hash_of
        out.append(row)
    return out


async def global_spend_keys(ctx: Context, q: GlobalSpendKeysQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    days = DayRange(q, ctx.now)
    ids = None if access.everything else access.key_ids
    slices = await day_slices(ctx.repo.session, days, "key", ids, by_scope=True)
    slices.sort(key=lambda s: (-s.totals.cost_nanos, s.scope_id or ""))
    if q.limit is not None:
        slices = slices[: q.limit]
    keys = await key_rows(ctx.repo.session, [s.scope_id for s in slices])
    out = []
    for s in slices:
        vk = keys.get(s.scope_id or "")
        out.append(
            {
                "api_key": key_name(vk, s.scope_id),
                "total_spend": usd(s.totals.cost_nanos),
                "key_alias": vk.key_alias if vk is not None else None,
                "key_name": vk.key_name if vk is not None else None,
            }
        )
    return out


async def global_spend_models(ctx: Context, q: GlobalSpendModelsQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    days = DayRange(q, ctx.now)
    slices = await day_slices(ctx.repo.session, days, *keys_scope(access), by_model=True)
    slices = [s for s in slices if s.model]
    slices.sort(key=lambda s: (-s.totals.cost_nanos, s.model or ""))
    return [
        {"model": s.model, "total_spend": usd(s.totals.cost_nanos), "total_tokens": s.totals.total_tokens}
        for s in slices[: q.limit]
    ]


async def global_spend_teams(ctx: Context, q: SpendRangeQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    days = DayRange(q, ctx.now)
    ids = None if access.everything else access.team_ids
    slices = await day_slices(ctx.repo.session, days, "team", ids, daily=True, by_scope=True)
    names = await team_names(ctx.repo.session, [s.scope_id for s in slices], "Unassigned")
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


async def global_spend_report(ctx: Context, q: GlobalSpendReportQuery) -> Any:
    access = await spend_access(ctx.repo, ctx.caller)
    days = DayRange(q, ctx.now)
    session = ctx.repo.session
    if q.customer_id is not None:
        access.check_admin("customer spend", param="customer_id")
    ids: frozenset[str] | None
    if q.api_key is not None or q.internal_user_id is not None or q.group_by == "api_key":
        if q.api_key is not None:
            key_id = await resolve_key_ref(ctx.repo, q.api_key)
            access.check_key(key_id)
            ids = frozenset({key_id})
        elif q.internal_user_id is not None:
            access.check_user(q.internal_user_id, param="internal_user_id")
            owned = await session.scalars(
                select(VirtualKey.key_id).where(VirtualKey.user_id == q.internal_user_id)
            )
            ids = frozenset(owned)
        else:
            ids = None if access.everything else access.key_ids
        slices = await day_slices(session, days, "key", ids, by_scope=True, by_model=True)
        return await _by_key(ctx, days, slices)
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
    slices = await day_slices(session, days, scope, ids, daily=True, by_scope=True, by_model=True)
    names: dict[str | None, Any] = (
        await team_names(session, [s.scope_id for s in slices], "Unassigned Team") if scope == "team" else {}
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
            spent = sum(p.totals.cost_nanos for p in parts)
            entries.append(
                {
                    field: label,
                    "total_spend": usd(spent),
                    **_display(ctx, days, total_spend=spent),
                    "total_saved_cache_cost": usd(sum(p.totals.saved_nanos for p in parts)),
                    "metadata": [
                        {
                            "model": p.model,
                            "spend": usd(p.totals.cost_nanos),
                            "total_tokens": p.totals.total_tokens,
                            "cache_hits": p.totals.cache_hits,
                            "saved_cache_cost": usd(p.totals.saved_nanos),
                        }
                        for p in parts
                    ],
                }
            )
        out.append({"group_by_day": days.local_start(day) if day else None, plural: entries})
    return out


def _display(ctx: Context, days: DayRange, **nanos: int) -> dict[str, Any]:
    """``{"display": …}``: the amounts in the display currency (none configured: ``{}``)."""
    if ctx.settings.currency is None:
        return {}
    return {"display": ctx.settings.currency.display(days.last, **nanos)}


async def _by_key(ctx: Context, days: DayRange, slices: list[Slice]) -> list[dict[str, Any]]:
    """LiteLLM's api_key grouping: per key, its totals and its ``model_details``."""
    keys = await key_rows(ctx.repo.session, [s.scope_id for s in slices])
    grouped: dict[str | None, list[Slice]] = {}
    for s in slices:
        grouped.setdefault(s.scope_id, []).append(s)
    out: list[dict[str, Any]] = []
    nanos: list[int] = []
    for sid, parts in grouped.items():
        nanos.append(sum(p.totals.cost_nanos for p in parts))
        out.append(
            {
                "api_key": key_name(keys.get(sid or ""), sid),
                "total_cost": usd(nanos[-1]),
                **_display(ctx, days, total_cost=nanos[-1]),
                "total_input_tokens": sum(p.totals.input_tokens for p in parts),
                "total_output_tokens": sum(p.totals.output_tokens for p in parts),
                "total_saved_cache_cost": usd(sum(p.totals.saved_nanos for p in parts)),
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
    return by_spend(out, nanos)

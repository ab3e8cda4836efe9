"""LiteLLM's daily activity endpoints (``/user|team|tag|customer/daily/activity``): issue #13.

Each answers LiteLLM's ``SpendAnalyticsPaginatedResponse``: ``results``, one per local day
with activity (newest first) in the request's ``timezone``, each with its ``metrics`` and a
``breakdown`` by ``models``, ``providers``, ``api_keys`` and ``entities``; and ``metadata``:
the totals of the page's days and the pagination (``page``, ``total_pages``, ``has_more``).
Pages are of days (``page_size`` days each), so a day is never split across pages and the
totals of all pages add up to the range's.

The figures are read from the rollups (:mod:`spendgate.ledger.activity_reads`) and are exact
to the nano-USD. Who may read what is decided by :mod:`spendgate.admin.spend_access` only:

* admins read everything, and any filter;
* an internal user reads their own ``/user/daily/activity`` and the teams they admin
  (another user or team: 403); a key that belongs to no user reads its own key's activity;
* ``/tag/daily/activity`` and ``/customer/daily/activity`` are for admins only;
* ``api_key`` naming a key the caller may not read is a 403.

The per-key breakdown lists the keys that belong to the entities (per the entity tables:
a user's keys, a team's keys, the keys bound to a customer, the keys carrying a tag), each
with its whole spend that day (the rollups keep no (entity, key) pairs). With ``api_key``,
the answer is that key's activity, listed under the entities it belongs to (none when it
belongs to none of the selected ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any

from sqlalchemy import select

from spendgate.admin._http import Context, Endpoint, endpoint
from spendgate.admin.schemas.activity import (
    ActivityQuery,
    CustomerActivityQuery,
    TagActivityQuery,
    TeamActivityQuery,
    UserActivityQuery,
    split_ids,
)
from spendgate.admin.spend_access import SpendAccess, resolve_key_ref, spend_access
from spendgate.admin.spend_lookup import chunks, key_name, key_rows
from spendgate.admin.spend_range import DayRange
from spendgate.admin.views import usd
from spendgate.entities.repository import EntityRepository
from spendgate.ledger.activity_reads import DayActivity, daily_activity, key_activity
from spendgate.ledger.reports import Totals
from spendgate.stores.database.models import EndCustomer, Team, User, VirtualKey

__all__ = ["ENDPOINTS", "UNASSIGNED", "UNKNOWN"]

UNASSIGNED = "Unassigned"
"""The entity name of spend without one (no team, no tag…), as LiteLLM names it."""
UNKNOWN = "unknown"
"""The model, provider or key name of spend without one, as LiteLLM names a missing provider."""

_OWNER_COLUMN = {"user": VirtualKey.user_id, "team": VirtualKey.team_id, "customer": VirtualKey.end_user_id}


async def _owned_keys(repo: EntityRepository, scope: str, ids: Collection[str]) -> set[str]:
    """The ``key_id`` of every existing key that belongs to one of ``ids`` (entities of ``scope``)."""
    if not ids:
        return set()
    if scope == "tag":
        rows = await repo.session.execute(
            select(VirtualKey.key_id, VirtualKey.tags).where(VirtualKey.tags.is_not(None))
        )
        return {key_id for key_id, tags in rows if set(tags or ()) & set(ids)}
    column = _OWNER_COLUMN[scope]
    out: set[str] = set()
    for chunk in chunks(ids):
        out.update(await repo.session.scalars(select(VirtualKey.key_id).where(column.in_(chunk))))
    return out


def _owners(scope: str, vk: VirtualKey | None) -> list[str | None]:
    """The entities of ``scope`` a key belongs to (``[None]``: none, or the key is gone)."""
    if vk is None:
        return [None]
    if scope == "tag":
        return list(vk.tags or ()) or [None]
    return [{"user": vk.user_id, "team": vk.team_id, "customer": vk.end_user_id}[scope]]


async def _entity_metadata(
    repo: EntityRepository, scope: str, ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """LiteLLM's per-entity ``metadata`` (a team's alias, a user's e-mail, a customer's alias)."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in chunks(ids):
        if scope == "team":
            for team_id, alias in await repo.session.execute(
                select(Team.team_id, Team.team_alias).where(Team.team_id.in_(chunk))
            ):
                out[team_id] = {"team_alias": alias}
        elif scope == "user":
            for user_id, email, alias in await repo.session.execute(
                select(User.user_id, User.user_email, User.user_alias).where(User.user_id.in_(chunk))
            ):
                out[user_id] = {"user_email": email, "user_alias": alias}
        elif scope == "customer":
            for user_id, alias in await repo.session.execute(
                select(EndCustomer.user_id, EndCustomer.alias).where(EndCustomer.user_id.in_(chunk))
            ):
                out[user_id] = {"alias": alias}
    return out


def _metrics(m: Totals) -> dict[str, Any]:
    """LiteLLM's ``SpendMetrics`` names for the ledger's totals."""
    return {
        "spend": usd(m.cost_nanos),
        "prompt_tokens": m.input_tokens,
        "completion_tokens": m.output_tokens,
        "cache_read_input_tokens": m.cache_read_tokens,
        "cache_creation_input_tokens": m.cache_write_tokens,
        "total_tokens": m.total_tokens,
        "successful_requests": m.successful_requests,
        "failed_requests": m.failed_requests,
        "api_requests": m.requests,
        "cache_hits": m.cache_hits,
        "saved_cache_cost": usd(m.saved_nanos),
    }


def _named(table: dict[str | None, Totals], none: str) -> dict[str, dict[str, Any]]:
    return {
        (name if name is not None else none): {"metrics": _metrics(m), "metadata": {}}
        for name, m in table.items()
    }


def _key_metadata(vk: VirtualKey | None) -> dict[str, Any]:
    if vk is None:
        return {"key_alias": None, "team_id": None, "user_id": None, "key_exists": False}
    return {"key_alias": vk.key_alias, "team_id": vk.team_id, "user_id": vk.user_id, "key_exists": True}


async def _render(
    repo: EntityRepository,
    scope: str,
    days: Sequence[DayActivity],
    page: int,
    page_size: int,
    display: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    shown = days[(page - 1) * page_size : page * page_size]
    key_ids = {k for d in shown for k in d.keys if k is not None}
    entity_ids = {e for d in shown for e in d.entities if e is not None}
    vks = await key_rows(repo.session, key_ids)
    entity_meta = await _entity_metadata(repo, scope, entity_ids)
    total = Totals()
    results = []
    for d in shown:
        total.add(d.metrics)
        api_keys: dict[str, Any] = {}
        for key_id, m in d.keys.items():
            vk = vks.get(key_id) if key_id is not None else None
            name = key_name(vk, key_id)
            api_keys[name if name is not None else UNKNOWN] = {
                "metrics": _metrics(m),
                "metadata": _key_metadata(vk),
            }
        entities = {
            (e if e is not None else UNASSIGNED): {
                "metrics": _metrics(m),
                "metadata": entity_meta.get(e, {}) if e is not None else {},
            }
            for e, m in d.entities.items()
        }
        results.append(
            {
                "date": d.day.isoformat(),
                "metrics": _metrics(d.metrics),
                "breakdown": {
                    "models": _named(d.models, UNKNOWN),
                    "providers": _named(d.providers, UNKNOWN),
                    "api_keys": api_keys,
                    "entities": entities,
                },
            }
        )
    return {
        "results": results,
        "metadata": {
            "total_spend": usd(total.cost_nanos),
            "total_prompt_tokens": total.input_tokens,
            "total_completion_tokens": total.output_tokens,
            "total_tokens": total.total_tokens,
            "total_api_requests": total.requests,
            "total_successful_requests": total.successful_requests,
            "total_failed_requests": total.failed_requests,
            "total_cache_read_input_tokens": total.cache_read_tokens,
            "total_cache_creation_input_tokens": total.cache_write_tokens,
            "total_cache_hits": total.cache_hits,
            "total_saved_cache_cost": usd(total.saved_nanos),
            "page": page,
            "total_pages": math.ceil(len(days) / page_size),
            "has_more": page * page_size < len(days),
            # the page's totals in the display currency (docs/spend-api.md, "Currency")
            **(
                {}
                if display is None
                else {
                    "display": display(total_spend=total.cost_nanos, total_saved_cache_cost=total.saved_nanos)
                }
            ),
        },
    }


def _selection(access: SpendAccess, scope: str, requested: list[str] | None, param: str) -> set[str] | None:
    """The entities the answer is about (None: all). 403 for one the caller may not read."""
    if access.everything:
        return set(requested) if requested else None
    if scope == "user":
        for user_id in requested or ():
            access.check_user(user_id, param)
        return set(requested) if requested else set(access.user_ids)
    if scope == "team":
        for team_id in requested or ():
            access.check_team(team_id, param)
        return set(requested) if requested else set(access.team_ids)
    access.check_admin(f"{scope} activity", param)
    return None  # unreachable: check_admin raised


async def _activity(
    ctx: Context,
    q: ActivityQuery,
    scope: str,
    requested: list[str] | None,
    param: str,
    excluded: Collection[str] = (),
) -> dict[str, Any]:
    span = DayRange(q, ctx.now)
    access = await spend_access(ctx.repo, ctx.caller)
    if scope in ("tag", "customer"):
        access.check_admin(f"{scope} activity", param)
    key_id: str | None = None
    if q.api_key is not None:
        key_id = await resolve_key_ref(ctx.repo, q.api_key)
        access.check_key(key_id)
    selected = _selection(access, scope, requested, param)
    if not access.everything and not access.user_ids:
        # A key that belongs to no user: only its own key's activity.
        selected = None
        if key_id is None:
            key_id = next(iter(sorted(access.key_ids)), "")
    days: list[DayActivity]
    if key_id is not None:
        vk = (await key_rows(ctx.repo.session, [key_id])).get(key_id)
        under = [e for e in _owners(scope, vk) if e not in excluded]
        if selected is not None:
            under = [e for e in under if e in selected]
        days = (
            await key_activity(
                ctx.repo.session,
                key_id=key_id,
                listed_under=under,
                first=span.first,
                last=span.last,
                tz=span.tz,
                model=q.model,
            )
            if under
            else []
        )
    else:
        excluded_keys = await _owned_keys(ctx.repo, scope, excluded)
        entities: Callable[[str | None], bool]
        keys: Callable[[str | None], bool]
        entity_ids: set[str] | None = None
        key_ids: set[str] | None = None
        if selected is None:
            entities = lambda e: e not in excluded  # noqa: E731
            keys = lambda k: k not in excluded_keys  # noqa: E731
        else:
            chosen = selected
            listed = await _owned_keys(ctx.repo, scope, chosen) - excluded_keys
            if not access.everything:
                listed &= access.key_ids
            entities = lambda e: e in chosen and e not in excluded  # noqa: E731
            keys = lambda k: k in listed  # noqa: E731
            entity_ids, key_ids = set(chosen), listed  # read only these ids' rollups (in SQL)
        days = (
            await daily_activity(
                ctx.repo.session,
                scope=scope,
                entities=entities,
                keys=keys,
                first=span.first,
                last=span.last,
                tz=span.tz,
                model=q.model,
                entity_ids=entity_ids,
                key_ids=key_ids,
            )
            if selected is None or selected
            else []
        )
    currency = ctx.settings.currency
    display = None if currency is None else partial(currency.display, span.last)
    return await _render(ctx.repo, scope, days, q.page, q.page_size, display)


async def user_daily_activity(ctx: Context, q: UserActivityQuery) -> dict[str, Any]:
    """``GET /user/daily/activity``."""
    return await _activity(ctx, q, "user", [q.user_id] if q.user_id else None, "user_id")


async def team_daily_activity(ctx: Context, q: TeamActivityQuery) -> dict[str, Any]:
    """``GET /team/daily/activity``."""
    excluded = split_ids(q.exclude_team_ids) or []
    return await _activity(ctx, q, "team", split_ids(q.team_ids), "team_ids", excluded)


async def tag_daily_activity(ctx: Context, q: TagActivityQuery) -> dict[str, Any]:
    """``GET /tag/daily/activity``."""
    return await _activity(ctx, q, "tag", split_ids(q.tags), "tags")


async def customer_daily_activity(ctx: Context, q: CustomerActivityQuery) -> dict[str, Any]:
    """``GET /customer/daily/activity``."""
    return await _activity(ctx, q, "customer", split_ids(q.end_user_ids), "end_user_ids")


ENDPOINTS: tuple[Endpoint, ...] = (
    endpoint(
        "/user/daily/activity",
        user_daily_activity,
        "A user's spend, tokens and requests per local day, by model, provider and key",
        query=UserActivityQuery,
        write=False,
        plain_keys=True,
    ),
    endpoint(
        "/team/daily/activity",
        team_daily_activity,
        "Teams' spend, tokens and requests per local day, by model, provider, key and team",
        query=TeamActivityQuery,
        write=False,
        plain_keys=True,
    ),
    endpoint(
        "/tag/daily/activity",
        tag_daily_activity,
        "Tags' spend, tokens and requests per local day (admins)",
        query=TagActivityQuery,
        write=False,
        plain_keys=True,
    ),
    endpoint(
        "/customer/daily/activity",
        customer_daily_activity,
        "Customers' spend, tokens and requests per local day (admins)",
        query=CustomerActivityQuery,
        write=False,
        plain_keys=True,
    ),
)

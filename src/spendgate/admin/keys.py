"""/key/*: virtual keys. The raw key is returned once (generate, regenerate); only its
SHA-256 hash (``token``) is stored (:mod:`spendgate.entities.keys`).

Who may do what is in :mod:`spendgate.admin.key_rights`. A custom key needs ``sk-`` and
at least 20 more characters (``schemas.CustomKey``: a 422 otherwise), so what is shown of
it never makes it guessable.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.key_rights import (
    check_create_rights,
    check_update_rights,
    expiry,
    key_filter,
    may_manage_key,
    may_read_key,
    within_owner_models,
)
from spendgate.admin.schemas import (
    KeyDelete,
    KeyGenerate,
    KeyInfoQuery,
    KeyListQuery,
    KeyRef,
    KeyRegenerate,
    KeyUpdate,
)
from spendgate.admin.views import key_out, keys_out, windows_json
from spendgate.core.money import to_nano
from spendgate.core.periods import parse_window, period_for
from spendgate.entities.codec import apply_limits, decode_limits, nanos
from spendgate.entities.keys import (
    KEY_SCOPE,
    check_alias,
    check_key_refs,
    check_member_of_team,
    delete_keys,
    key_by_alias,
    new_key,
    new_raw_key,
    require_key,
    retoken_key,
)
from spendgate.entities.repository import Page
from spendgate.entities.service import merged_metadata, utc
from spendgate.http.errors import InvalidField, PermissionDenied
from spendgate.ledger.adjustments import KeyAdjustment, adjustment_time, record_key_adjustment
from spendgate.ledger.scope_spend import range_spend
from spendgate.stores.database.models import VirtualKey

__all__ = [
    "block_key",
    "delete_key",
    "generate_key",
    "key_info",
    "list_keys",
    "regenerate_key",
    "unblock_key",
    "update_key",
]

_PLAIN = ("key_alias", "models", "user_id", "team_id", "organization_id", "end_user_id", "budget_id")


def _apply(ctx: Context, vk: VirtualKey, body: KeyGenerate | KeyUpdate) -> None:
    given = body.model_fields_set
    for name in _PLAIN:
        if name in given:
            setattr(vk, name, getattr(body, name))
    if "tags" in given:
        vk.tags = body.tags
    if "blocked" in given:
        vk.blocked = bool(body.blocked)
    if "duration" in given:
        vk.expires = expiry(ctx.now, body.duration)
    if "metadata" in given:
        vk.metadata_ = merged_metadata(vk.metadata_, body.metadata or {})
    apply_limits(vk, body, now=ctx.now)
    if "temp_budget_increase" in given:
        metadata = dict(vk.metadata_ or {})
        increase = nanos(body.temp_budget_increase)
        until = utc(body.temp_budget_expiry)
        if increase is None or until is None:
            metadata.pop("temp_budget_increase_nanos", None)
            metadata.pop("temp_budget_expiry", None)
        else:
            metadata["temp_budget_increase_nanos"] = increase
            metadata["temp_budget_expiry"] = until.isoformat()
        vk.metadata_ = metadata


async def _set_windows(ctx: Context, vk: VirtualKey, body: KeyGenerate | KeyUpdate) -> None:
    """The key's extra budget windows become exactly ``body.budget_limits``."""
    windows = [(w.budget_duration, nanos(w.max_budget)) for w in body.budget_limits or ()]
    await ctx.repo.replace_windows(KEY_SCOPE.name, vk.key_id, windows, now=ctx.now, by=ctx.entities.by)


async def generate_key(ctx: Context, body: KeyGenerate) -> dict[str, Any]:
    caller, svc = ctx.caller, ctx.entities
    check_create_rights(caller, body)
    if not caller.is_admin and body.user_id is None:
        # Owned by its creator, team admins included: on a team key the creator's member
        # budget then applies with the team's (a new key never escapes it).
        body = body.model_copy(update={"user_id": caller.user_id})
        body.model_fields_set.add("user_id")
    await check_key_refs(svc, body, None)
    if not caller.is_admin:
        await check_member_of_team(svc, body.user_id, body.team_id)
        body = await within_owner_models(svc, body)
    await check_alias(svc, body.key_alias, None)
    raw = body.key or new_raw_key()
    vk = await new_key(svc, raw, team_id=body.team_id, organization_id=body.organization_id)
    _apply(ctx, vk, body)
    svc.stamp(vk, created=True)
    await ctx.repo.add(vk)
    await _set_windows(ctx, vk, body)
    return {"key": raw, "token_id": vk.token, **key_out(vk, windows_json(body.budget_limits))}


async def _key_for_update(ctx: Context, body: KeyUpdate) -> VirtualKey:
    if body.key is not None:
        return await require_key(ctx.entities, body.key)
    if body.key_alias is not None:
        return await key_by_alias(ctx.entities, body.key_alias, "key_alias")
    raise InvalidField("give key (or key_alias) to say which key to update", param="key")


async def _update_checked(ctx: Context, vk: VirtualKey, body: KeyUpdate) -> None:
    caller, svc = ctx.caller, ctx.entities
    given = body.model_fields_set
    if "spend" in given:
        _check_spend(ctx, body)
    await check_update_rights(svc, caller, vk, body)
    spend_at = None
    if body.spend is not None:
        spend_at = ctx.settings.clock()
        if ctx.settings.flush_ledger is not None:
            # Every event this instance acknowledged before ``spend_at`` into the ledger,
            # before this transaction writes anything (SQLite: the writer must not wait on it).
            await ctx.settings.flush_ledger(ctx.request)
    await check_key_refs(svc, body, vk)
    if not caller.is_admin and ({"user_id", "team_id"} & given):
        await check_member_of_team(
            svc,
            body.user_id if "user_id" in given else vk.user_id,
            body.team_id if "team_id" in given else vk.team_id,
        )
    if "key_alias" in given and body.key is not None:
        await check_alias(svc, body.key_alias, vk.token)
    _apply(ctx, vk, body)
    svc.stamp(vk)
    # The UPDATE locks the key's row until the commit: two calls setting one key's spend
    # run one after the other, so the second reads the first's adjustment.
    await ctx.repo.flush()
    if "budget_limits" in given:
        await _set_windows(ctx, vk, body)
    ctx.changed_keys += (vk.token, vk.key_id)
    if body.spend is not None and spend_at is not None:
        await _set_spend(ctx, vk, to_nano(body.spend), spend_at)


def _check_spend(ctx: Context, body: KeyUpdate) -> None:
    """``spend`` is a proxy admin's (403 for anyone else, before anything else is checked)
    and a USD amount (422 for ``null``)."""
    if not ctx.caller.is_admin:
        raise PermissionDenied("spend: only a proxy_admin may set a key's spend")
    if body.spend is None:
        raise InvalidField("spend: give a USD amount (a number >= 0), e.g. 0 to reset the key", param="spend")


async def _set_spend(ctx: Context, vk: VirtualKey, to_nanos: int, at: datetime) -> None:
    """Set the key's current spend (its main window's, as ``/key/info`` shows it) to
    ``to_nanos`` as of ``at``: an adjustment event of the difference from what the key
    spent in that window's period before ``at``, in this transaction (the key's row is
    locked: calls setting one key's spend run one after the other); the main window's
    counter is set from the ledger after the commit (``spend_set_keys``). Only that window
    moves: the key's ``budget_limits`` windows and model budgets keep counting real spend
    (:mod:`spendgate.ledger.adjustments`). An event settled after ``at`` counts on top of
    the value set, even if it reached the ledger before this read."""
    profiles = await ctx.repo.budgets([vk.budget_id] if vk.budget_id else [])
    windows = await ctx.repo.windows(KEY_SCOPE.name, [vk.key_id])
    spec = decode_limits(vk, profiles.get(vk.budget_id or ""), windows[vk.key_id])
    window = parse_window(spec.budget_duration or "lifetime")
    period = period_for(window, at, ctx.settings.timezone, spec.budget_start)
    conn = await ctx.repo.session.connection()
    at = await adjustment_time(conn, vk.key_id, at, period.start)
    assert KEY_SCOPE.rollup is not None
    adjustment = KeyAdjustment(
        key_id=vk.key_id,
        at=at,
        by=ctx.caller.name,
        from_nanos=await range_spend(conn, KEY_SCOPE.rollup, vk.key_id, period.start, at),
        to_nanos=to_nanos,
        budget_duration=spec.budget_duration,
        period_start=period.start,
    )
    await record_key_adjustment(conn, adjustment)
    ctx.spend_set_keys.append(vk.key_id)


async def update_key(ctx: Context, body: KeyUpdate) -> dict[str, Any]:
    vk = await _key_for_update(ctx, body)
    await _update_checked(ctx, vk, body)
    return (await keys_out(ctx.repo, [vk]))[0]


async def regenerate_key(ctx: Context, body: KeyRegenerate) -> dict[str, Any]:
    """A new raw key for the same key: same ``key_id``, limits, windows and spend; the old
    raw key stops working at once."""
    vk = await _key_for_update(ctx, body)
    await _update_checked(ctx, vk, body)
    old, key_id = vk.token, vk.key_id
    raw = body.new_key or new_raw_key()
    fresh = await retoken_key(ctx.entities, vk, raw)
    ctx.changed_keys += (old, key_id)
    return {"key": raw, "token_id": fresh.token, **(await keys_out(ctx.repo, [fresh]))[0]}


async def key_info(ctx: Context, query: KeyInfoQuery) -> dict[str, Any]:
    ref = query.key
    if ref is None:
        if ctx.caller.is_master or ctx.caller.key_hash is None:
            raise InvalidField("give ?key= (the master key is not a virtual key)", param="key")
        vk = await require_key(ctx.entities, ctx.caller.key_hash)
    else:
        vk = await require_key(ctx.entities, ref)
        if not may_read_key(ctx.caller, vk):
            raise PermissionDenied("you may not read this key")
    info = (await keys_out(ctx.repo, [vk], spend=ctx.spend_at))[0]
    return {"key": ref if ref is not None else vk.token, "info": info}


async def list_keys(ctx: Context, query: KeyListQuery) -> dict[str, Any]:
    where = key_filter(
        ctx.caller,
        user_id=query.user_id,
        team_id=query.team_id,
        organization_id=query.organization_id,
        key_alias=query.key_alias,
        search=query.search,
    )
    total, rows = await ctx.repo.list_keys(where, Page(query.page, query.size))
    keys: list[Any] = (
        await keys_out(ctx.repo, rows, spend=ctx.spend_at)
        if query.return_full_object
        else [r.token for r in rows]
    )
    return {
        "keys": keys,
        "total_count": total,
        "current_page": query.page,
        "total_pages": math.ceil(total / query.size) if total else 0,
    }


async def delete_key(ctx: Context, body: KeyDelete) -> dict[str, Any]:
    rows: dict[str, VirtualKey] = {}
    for ref in body.keys or ():
        vk = await require_key(ctx.entities, ref, "keys")
        rows[vk.token] = vk
    for alias in body.key_aliases or ():
        found = await key_by_alias(ctx.entities, alias, "key_aliases")
        rows[found.token] = found
    for vk in rows.values():
        if not may_manage_key(ctx.caller, vk):
            raise PermissionDenied(f"you may not delete key {vk.key_name}")
    ctx.changed_keys += await delete_keys(ctx.entities, list(rows.values()))
    return {"deleted_keys": [*(body.keys or ()), *(body.key_aliases or ())]}


async def _set_blocked(ctx: Context, body: KeyRef, blocked: bool) -> dict[str, Any]:
    vk = await require_key(ctx.entities, body.key)
    caller = ctx.caller
    if not may_manage_key(caller, vk):
        raise PermissionDenied("you may not change this key")
    if not blocked and not caller.admins_team(vk.team_id):
        raise PermissionDenied("only a proxy_admin or the team's admin may unblock a key")
    vk.blocked = blocked
    ctx.entities.stamp(vk)
    await ctx.repo.flush()
    ctx.changed_keys += (vk.token, vk.key_id)
    return (await keys_out(ctx.repo, [vk]))[0]


async def block_key(ctx: Context, body: KeyRef) -> dict[str, Any]:
    return await _set_blocked(ctx, body, True)


async def unblock_key(ctx: Context, body: KeyRef) -> dict[str, Any]:
    return await _set_blocked(ctx, body, False)

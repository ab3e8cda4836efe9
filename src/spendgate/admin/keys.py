"""/key/*: virtual keys. The raw key is returned once (generate, regenerate); only its
SHA-256 hash (``token``) is stored.

Who may do what (details in ``docs/admin-api.md``):

* proxy_admin: everything; proxy_admin_viewer: read everything.
* team admin: every key of their teams (create, update, block, unblock, regenerate, delete),
  owned by any member of the team (themselves when they name nobody).
* the owner (the key's ``user_id``): read, block, regenerate, delete; create keys owned by
  themselves (optionally in a team they belong to); update only to *tighten* limits.

A key made by anyone but a proxy_admin is owned by a user, so on a team key the owner's
in-team member budget (``max_budget_in_team``) applies with the team's budget
(docs/enforcement.md, "Team keys").

What is stored of a raw key: its SHA-256 hash and a display name that reveals at most a
fifth of the secret (:func:`_display`); a custom key needs ``sk-`` and at least 20 more
characters (``schemas.CustomKey``: a 422 otherwise), so what is shown never makes it
guessable.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.admin._http import Context
from spendgate.admin.convert import (
    apply_limits,
    audit_out,
    delete_windows,
    limits_out,
    load_windows,
    merged_metadata,
    nanos,
    public_metadata,
    replace_windows,
    require_row,
    stamp,
    usd,
    utc,
)
from spendgate.admin.roles import Caller
from spendgate.admin.schemas import (
    KeyDelete,
    KeyGenerate,
    KeyInfoQuery,
    KeyListQuery,
    KeyRef,
    KeyRegenerate,
    KeyUpdate,
    parse_expiry_duration,
)
from spendgate.core.keys import hash_key
from spendgate.http.errors import Conflict, InvalidField, NotFound, PermissionDenied
from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

__all__ = [
    "block_key",
    "delete_key",
    "delete_keys_where",
    "find_key",
    "generate_key",
    "key_info",
    "key_out",
    "keys_out",
    "list_keys",
    "may_read_key",
    "new_raw_key",
    "regenerate_key",
    "unblock_key",
    "update_key",
]

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_ALL_MODELS = "all-proxy-models"
# Fields an owner (who is not a team admin of the key's team) may send to /key/update.
_OWNER_FREE = frozenset({"key", "key_alias", "metadata", "tags", "new_key"})
_OWNER_TIGHTEN = ("max_budget", "soft_budget", "tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")
_ADMIN_ONLY = ("organization_id", "budget_id")
_TEAM_ADMIN_ONLY = ("end_user_id", "temp_budget_increase", "temp_budget_expiry")


_KEY_LEAD = "sk-"


def new_raw_key() -> str:
    """A new raw key: ``sk-`` and 32 random bytes, URL-safe base64."""
    return _KEY_LEAD + secrets.token_urlsafe(32)


def _display(raw: str) -> tuple[str, str]:
    """``(key_prefix, key_name)`` shown instead of the key, revealing at most a fifth of
    its secret part: ``sk-AbCd`` and ``sk-...wxyz`` for a generated key (43 secret
    characters); a shorter key shows no suffix (``sk-AbCd...``), and fewer leading
    characters below 20."""
    lead = _KEY_LEAD if raw.startswith(_KEY_LEAD) else ""
    secret = raw[len(lead) :]
    head = min(4, len(secret) // 5)
    prefix = lead + secret[:head]
    if len(secret) >= 40:  # 4 + 4 shown of 40 or more
        return prefix, f"{lead}...{secret[-4:]}"
    return prefix, f"{prefix}..."


async def find_key(session: AsyncSession, ref: str) -> VirtualKey | None:
    """The key given as its hash (token) or as the raw key."""
    if _HASH_RE.match(ref):
        found = await session.get(VirtualKey, ref)
        if found is not None:
            return found
    return await session.get(VirtualKey, hash_key(ref))


async def _hash_in_use(session: AsyncSession, token: str, *, but: str | None = None) -> bool:
    """Whether ``token`` is a key's current hash or another key's stable id (a retired
    hash: reusing it would make two keys indistinguishable in old spend events)."""
    taken = await session.scalar(
        select(VirtualKey.key_id).where(or_(VirtualKey.token == token, VirtualKey.key_id == token)).limit(1)
    )
    return taken is not None and taken != but


async def _key_or_404(session: AsyncSession, ref: str, param: str = "key") -> VirtualKey:
    found = await find_key(session, ref)
    if found is None:
        raise NotFound("key not found", param=param)
    return found


def key_out(vk: VirtualKey, windows: list[dict[str, Any]]) -> dict[str, Any]:
    """A key as JSON, with LiteLLM's field names and USD amounts."""
    metadata = vk.metadata_ or {}
    return {
        "token": vk.token,
        "key_id": vk.key_id,
        "key_name": vk.key_name,
        "key_alias": vk.key_alias,
        "expires": vk.expires,
        "models": vk.models or [],
        **limits_out(vk),
        "budget_limits": windows,
        "user_id": vk.user_id,
        "team_id": vk.team_id,
        "organization_id": vk.organization_id,
        "end_user_id": vk.end_user_id,
        "budget_id": vk.budget_id,
        "metadata": public_metadata(vk.metadata_),
        "tags": vk.tags or [],
        "blocked": vk.blocked,
        "temp_budget_increase": usd(metadata.get("temp_budget_increase_nanos")),
        "temp_budget_expiry": metadata.get("temp_budget_expiry"),
        "last_active": vk.last_active,
        **audit_out(vk),
    }


async def keys_out(session: AsyncSession, rows: list[VirtualKey]) -> list[dict[str, Any]]:
    windows = await load_windows(session, "key", [vk.key_id for vk in rows])
    return [key_out(vk, windows[vk.key_id]) for vk in rows]


def _may_manage(caller: Caller, vk: VirtualKey) -> bool:
    return caller.admins_team(vk.team_id) or (caller.user_id is not None and vk.user_id == caller.user_id)


def may_read_key(caller: Caller, vk: VirtualKey) -> bool:
    return (
        caller.reads_all
        or _may_manage(caller, vk)
        or (vk.team_id is not None and caller.teams.get(vk.team_id) == "admin")
    )


def _forbid(field: str, why: str) -> PermissionDenied:
    return PermissionDenied(f"{field}: {why}")


async def _check_refs(ctx: Context, body: KeyGenerate | KeyUpdate, vk: VirtualKey | None) -> None:
    """404 for unknown users, teams, organizations, customers, budgets; models ⊆ team's."""
    given = body.model_fields_set
    s = ctx.session
    if body.user_id is not None and "user_id" in given:
        await require_row(s, User, body.user_id, "user", "user_id")
    if body.organization_id is not None and "organization_id" in given:
        await require_row(s, Organization, body.organization_id, "organization", "organization_id")
    if body.end_user_id is not None and "end_user_id" in given:
        await require_row(s, EndCustomer, body.end_user_id, "customer", "end_user_id")
    if body.budget_id is not None and "budget_id" in given:
        await require_row(s, Budget, body.budget_id, "budget", "budget_id")
    team_id = body.team_id if "team_id" in given else (vk.team_id if vk else None)
    if team_id is None:
        return
    team: Team = await require_row(s, Team, team_id, "team", "team_id")
    org = body.organization_id if "organization_id" in given else (vk.organization_id if vk else None)
    if team.organization_id and org and org != team.organization_id:
        raise InvalidField(
            f"team {team_id!r} belongs to organization {team.organization_id!r}, not {org!r}",
            param="organization_id",
        )
    models = body.models if "models" in given else (vk.models if vk else None)
    allowed = team.models or []
    if models and allowed and _ALL_MODELS not in allowed:
        outside = [m for m in models if m not in allowed]
        if outside:
            raise InvalidField(f"models {outside} are not among team {team_id!r}'s models", param="models")


async def _check_owner_in_team(session: AsyncSession, user_id: str | None, team_id: str | None) -> None:
    if user_id is None or team_id is None:
        return
    member = await session.get(TeamMembership, (user_id, team_id))
    if member is None:
        raise InvalidField(f"user {user_id!r} is not a member of team {team_id!r}", param="user_id")


def _check_create_rights(caller: Caller, body: KeyGenerate) -> None:
    if caller.is_admin:
        return
    given = body.model_fields_set
    for name in _ADMIN_ONLY:
        if name in given and getattr(body, name) is not None:
            raise _forbid(name, "only a proxy_admin may set it")
    if body.team_id is not None and caller.admins_team(body.team_id):
        return  # a team admin creates keys for any member of the team (default: themselves)
    if body.team_id is not None and not caller.in_team(body.team_id):
        raise _forbid("team_id", f"you are not a member of team {body.team_id!r}")
    if body.user_id is not None and body.user_id != caller.user_id:
        raise _forbid("user_id", "you may only create keys owned by yourself")
    for name in _TEAM_ADMIN_ONLY:
        if name in given and getattr(body, name) is not None:
            raise _forbid(name, "only a proxy_admin or the team's admin may set it")


def _tightens(old: Any, new: Any) -> bool:
    return new is not None and (old is None or new <= old)


def _check_owner_update(vk: VirtualKey, body: KeyUpdate) -> None:
    """An owner who is not an admin of the key's team may only tighten their key."""
    for name in sorted(body.model_fields_set):
        value = getattr(body, name)
        if name in _OWNER_FREE:
            continue
        if name in _OWNER_TIGHTEN:
            column = f"{name}_nanos" if name in ("max_budget", "soft_budget") else name
            new = nanos(value) if name in ("max_budget", "soft_budget") else value
            if not _tightens(getattr(vk, column), new):
                raise _forbid(name, "you may lower this limit on your own key, not raise or remove it")
        elif name == "blocked":
            if value is not True:
                raise _forbid("blocked", "only an admin may unblock a key")
        elif name == "models":
            old = vk.models or []
            if not value or (old and any(m not in old for m in value)):
                raise _forbid("models", "you may only narrow the models of your own key")
        elif name in ("duration", "budget_limits"):
            continue  # compared with the stored expiry / windows by the caller (needs the session)
        else:
            raise _forbid(name, "only a proxy_admin or the team's admin may change it")


async def _check_owner_windows(session: AsyncSession, vk: VirtualKey, body: KeyUpdate) -> None:
    rows = await session.scalars(
        select(BudgetWindow).where(BudgetWindow.scope_type == "key", BudgetWindow.scope_id == vk.key_id)
    )
    new = {w.budget_duration: nanos(w.max_budget) for w in body.budget_limits or ()}
    for w in rows:
        if w.budget_duration not in new or not _tightens(w.max_budget_nanos, new[w.budget_duration]):
            raise _forbid(
                "budget_limits", f"you may not remove or raise the {w.budget_duration} window of your key"
            )


async def _within_owner_models(ctx: Context, body: KeyGenerate) -> KeyGenerate:
    """A key made by a non-admin for a user restricted to some models gets at most those
    models (none given: exactly those), so a new key never widens what its owner may use."""
    if body.user_id is None:
        return body
    owner = await ctx.session.get(User, body.user_id)
    allowed = (owner.models or []) if owner is not None else []
    if not allowed or _ALL_MODELS in allowed:
        return body
    if not body.models:
        return body.model_copy(update={"models": list(allowed)})
    outside = [m for m in body.models if m not in allowed]
    if outside:
        raise _forbid("models", f"{outside} are not among user {body.user_id!r}'s models")
    return body


async def _check_alias(session: AsyncSession, alias: str | None, token: str | None) -> None:
    if alias is None:
        return
    other = await session.scalar(select(VirtualKey.token).where(VirtualKey.key_alias == alias))
    if other is not None and other != token:
        raise Conflict(f"key_alias {alias!r} is already used by another key", param="key_alias")


def _apply(ctx: Context, vk: VirtualKey, body: KeyGenerate | KeyUpdate) -> None:
    given = body.model_fields_set
    for name in ("key_alias", "models", "user_id", "team_id", "organization_id", "end_user_id", "budget_id"):
        if name in given:
            setattr(vk, name, getattr(body, name))
    if "tags" in given:
        vk.tags = body.tags
    if "blocked" in given:
        vk.blocked = bool(body.blocked)
    if "duration" in given:
        vk.expires = (
            None
            if body.duration is None
            else ctx.now + timedelta(seconds=parse_expiry_duration(body.duration))
        )
    if "metadata" in given:
        vk.metadata_ = merged_metadata(vk.metadata_, body.metadata or {})
    apply_limits(vk, body)
    if "temp_budget_increase" in given:
        metadata = dict(vk.metadata_ or {})
        increase = nanos(body.temp_budget_increase)
        expiry = utc(body.temp_budget_expiry)
        if increase is None or expiry is None:
            metadata.pop("temp_budget_increase_nanos", None)
            metadata.pop("temp_budget_expiry", None)
        else:
            metadata["temp_budget_increase_nanos"] = increase
            metadata["temp_budget_expiry"] = expiry.isoformat()
        vk.metadata_ = metadata


async def generate_key(ctx: Context, body: KeyGenerate) -> dict[str, Any]:
    caller = ctx.caller
    _check_create_rights(caller, body)
    if not caller.is_admin and body.user_id is None:
        # Owned by its creator, team admins included: on a team key the creator's member
        # budget then applies with the team's (a new key never escapes it).
        body = body.model_copy(update={"user_id": caller.user_id})
        body.model_fields_set.add("user_id")
    await _check_refs(ctx, body, None)
    if not caller.is_admin:
        await _check_owner_in_team(ctx.session, body.user_id, body.team_id)
        body = await _within_owner_models(ctx, body)
    await _check_alias(ctx.session, body.key_alias, None)
    raw = body.key or new_raw_key()
    token = hash_key(raw)
    if await _hash_in_use(ctx.session, token):
        raise Conflict("this key already exists", param="key")
    prefix, name = _display(raw)
    vk = VirtualKey(token=token, key_id=token, key_prefix=prefix, key_name=name, blocked=False)
    if body.team_id is not None and body.organization_id is None:
        team = await ctx.session.get(Team, body.team_id)
        vk.organization_id = team.organization_id if team else None
    _apply(ctx, vk, body)
    stamp(vk, ctx.now, caller.name, created=True)
    ctx.session.add(vk)
    await ctx.session.flush()
    await replace_windows(ctx.session, "key", vk.key_id, body.budget_limits, now=ctx.now, by=caller.name)
    return {"key": raw, "token_id": token, **key_out(vk, _windows_json(body))}


def _windows_json(body: KeyGenerate | KeyUpdate) -> list[dict[str, Any]]:
    return [
        {"budget_duration": w.budget_duration, "max_budget": usd(nanos(w.max_budget))}
        for w in body.budget_limits or ()
    ]


async def _key_for_update(ctx: Context, body: KeyUpdate) -> VirtualKey:
    if body.key is not None:
        vk = await _key_or_404(ctx.session, body.key)
    elif body.key_alias is not None:
        found = await ctx.session.scalar(select(VirtualKey).where(VirtualKey.key_alias == body.key_alias))
        if found is None:
            raise NotFound(f"no key with key_alias {body.key_alias!r}", param="key_alias")
        vk = found
    else:
        raise InvalidField("give key (or key_alias) to say which key to update", param="key")
    return vk


async def _update_checked(ctx: Context, vk: VirtualKey, body: KeyUpdate) -> None:
    caller = ctx.caller
    if not _may_manage(caller, vk):
        raise PermissionDenied("you may not change this key")
    given = body.model_fields_set
    if not caller.admins_team(vk.team_id):
        _check_owner_update(vk, body)
        if "budget_limits" in given:
            await _check_owner_windows(ctx.session, vk, body)
        if "duration" in given:
            new_expiry = (
                None
                if body.duration is None
                else ctx.now + timedelta(seconds=parse_expiry_duration(body.duration))
            )
            if vk.expires is not None and (new_expiry is None or new_expiry > vk.expires):
                raise _forbid("duration", "you may shorten the life of your own key, not extend it")
    elif not caller.is_admin:
        for name in _ADMIN_ONLY:
            if name in given:
                raise _forbid(name, "only a proxy_admin may change it")
        if "team_id" in given and not caller.admins_team(body.team_id):
            raise _forbid("team_id", "you may only move a key to a team you administer")
    await _check_refs(ctx, body, vk)
    if not caller.is_admin and ({"user_id", "team_id"} & given):
        await _check_owner_in_team(
            ctx.session,
            body.user_id if "user_id" in given else vk.user_id,
            body.team_id if "team_id" in given else vk.team_id,
        )
    if "key_alias" in given and body.key is not None:
        await _check_alias(ctx.session, body.key_alias, vk.token)
    _apply(ctx, vk, body)
    stamp(vk, ctx.now, caller.name)
    await ctx.session.flush()
    if "budget_limits" in given:
        await replace_windows(ctx.session, "key", vk.key_id, body.budget_limits, now=ctx.now, by=caller.name)
    ctx.changed_keys += (vk.token, vk.key_id)


async def update_key(ctx: Context, body: KeyUpdate) -> dict[str, Any]:
    vk = await _key_for_update(ctx, body)
    await _update_checked(ctx, vk, body)
    return (await keys_out(ctx.session, [vk]))[0]


async def regenerate_key(ctx: Context, body: KeyRegenerate) -> dict[str, Any]:
    """A new raw key for the same key: same ``key_id``, limits, windows and spend; the old
    raw key stops working at once."""
    vk = await _key_for_update(ctx, body)
    await _update_checked(ctx, vk, body)
    old = vk.token
    raw = body.new_key or new_raw_key()
    token = hash_key(raw)
    if token == old or await _hash_in_use(ctx.session, token, but=vk.key_id):
        raise Conflict("new_key is already in use", param="new_key")
    prefix, name = _display(raw)
    s = ctx.session
    await s.execute(
        update(VirtualKey)
        .where(VirtualKey.token == old)
        .values(token=token, key_prefix=prefix, key_name=name, updated_at=ctx.now, updated_by=ctx.caller.name)
        .execution_options(synchronize_session=False)
    )
    s.expunge(vk)
    fresh = await _key_or_404(s, token)
    ctx.changed_keys += (old, vk.key_id)
    return {"key": raw, "token_id": token, **(await keys_out(s, [fresh]))[0]}


async def key_info(ctx: Context, query: KeyInfoQuery) -> dict[str, Any]:
    ref = query.key
    if ref is None:
        if ctx.caller.is_master or ctx.caller.key_hash is None:
            raise InvalidField("give ?key= (the master key is not a virtual key)", param="key")
        vk = await _key_or_404(ctx.session, ctx.caller.key_hash)
    else:
        vk = await _key_or_404(ctx.session, ref)
        if not may_read_key(ctx.caller, vk):
            raise PermissionDenied("you may not read this key")
    return {"key": ref if ref is not None else vk.token, "info": (await keys_out(ctx.session, [vk]))[0]}


async def list_keys(ctx: Context, query: KeyListQuery) -> dict[str, Any]:
    caller = ctx.caller
    stmt = select(VirtualKey)
    if not caller.reads_all:
        scope = [VirtualKey.user_id == caller.user_id]
        if caller.admin_teams:
            scope.append(VirtualKey.team_id.in_(caller.admin_teams))
        stmt = stmt.where(or_(*scope))
    for name in ("user_id", "team_id", "organization_id", "key_alias"):
        value = getattr(query, name)
        if value is not None:
            stmt = stmt.where(getattr(VirtualKey, name) == value)
    total = await ctx.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(
        await ctx.session.scalars(
            stmt.order_by(VirtualKey.created_at, VirtualKey.token)
            .offset((query.page - 1) * query.size)
            .limit(query.size)
        )
    )
    keys: list[Any] = (
        await keys_out(ctx.session, rows) if query.return_full_object else [r.token for r in rows]
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
        vk = await _key_or_404(ctx.session, ref, "keys")
        rows[vk.token] = vk
    for alias in body.key_aliases or ():
        found = await ctx.session.scalar(select(VirtualKey).where(VirtualKey.key_alias == alias))
        if found is None:
            raise NotFound(f"no key with key_alias {alias!r}", param="key_aliases")
        rows[found.token] = found
    for vk in rows.values():
        if not _may_manage(ctx.caller, vk):
            raise PermissionDenied(f"you may not delete key {vk.key_name}")
    tokens = list(rows)
    await delete_windows(ctx.session, "key", [vk.key_id for vk in rows.values()])
    await ctx.session.execute(
        delete(VirtualKey).where(VirtualKey.token.in_(tokens)).execution_options(synchronize_session=False)
    )
    ctx.changed_keys += [*tokens, *(vk.key_id for vk in rows.values())]
    return {"deleted_keys": [*(body.keys or ()), *(body.key_aliases or ())]}


async def _set_blocked(ctx: Context, body: KeyRef, blocked: bool) -> dict[str, Any]:
    vk = await _key_or_404(ctx.session, body.key)
    caller = ctx.caller
    if not _may_manage(caller, vk):
        raise PermissionDenied("you may not change this key")
    if not blocked and not caller.admins_team(vk.team_id):
        raise PermissionDenied("only a proxy_admin or the team's admin may unblock a key")
    vk.blocked = blocked
    stamp(vk, ctx.now, caller.name)
    await ctx.session.flush()
    ctx.changed_keys += (vk.token, vk.key_id)
    return (await keys_out(ctx.session, [vk]))[0]


async def block_key(ctx: Context, body: KeyRef) -> dict[str, Any]:
    return await _set_blocked(ctx, body, True)


async def unblock_key(ctx: Context, body: KeyRef) -> dict[str, Any]:
    return await _set_blocked(ctx, body, False)


async def delete_keys_where(session: AsyncSession, *conditions: Any) -> list[str]:
    """Delete every key matching ``conditions`` and its windows; returns their hashes and
    stable ids (the names the gateway's caches know them by)."""
    found = (await session.execute(select(VirtualKey.token, VirtualKey.key_id).where(*conditions))).all()
    tokens = [token for token, _ in found]
    await delete_windows(session, "key", [key_id for _, key_id in found])
    if tokens:
        await session.execute(
            delete(VirtualKey)
            .where(VirtualKey.token.in_(tokens))
            .execution_options(synchronize_session=False)
        )
    return [*tokens, *(key_id for _, key_id in found)]

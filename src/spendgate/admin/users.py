"""/user/*: internal users (people and services that own keys).

proxy_admin creates, updates and deletes users. A user reads their own record and may
change their ``user_alias``, ``user_email`` and ``metadata``, and *lower* (never raise or
remove) their own limits. A team admin reads the users of their teams.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from sqlalchemy import delete, func, or_, select
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
)
from spendgate.admin.keys import delete_keys_where, generate_key, keys_out
from spendgate.admin.roles import Caller, require_admin
from spendgate.admin.schemas import (
    KeyGenerate,
    Member,
    TeamRef,
    UserIds,
    UserInfoQuery,
    UserListQuery,
    UserNew,
    UserUpdate,
)
from spendgate.admin.teams import _add_member, delete_memberships, teams_out
from spendgate.http.errors import Conflict, InvalidField, NotFound, PermissionDenied
from spendgate.stores.database.models import (
    Organization,
    OrganizationMembership,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

__all__ = ["delete_users", "list_users", "new_user", "update_user", "user_info", "users_out"]

_SELF_FREE = frozenset({"user_id", "user_alias", "user_email", "metadata"})
_SELF_TIGHTEN = ("max_budget", "soft_budget", "tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")


async def users_out(session: AsyncSession, users: list[User]) -> list[dict[str, Any]]:
    ids = [u.user_id for u in users]
    windows = await load_windows(session, "user", ids)
    teams: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        rows = await session.execute(
            select(TeamMembership.user_id, TeamMembership.team_id)
            .where(TeamMembership.user_id.in_(ids))
            .order_by(TeamMembership.team_id)
        )
        for user_id, team_id in rows:
            teams[user_id].append(team_id)
    return [
        {
            "user_id": u.user_id,
            "user_email": u.user_email,
            "user_alias": u.user_alias,
            "user_role": u.user_role,
            "organization_id": u.organization_id,
            "models": u.models or [],
            **limits_out(u),
            "budget_limits": windows[u.user_id],
            "metadata": public_metadata(u.metadata_),
            "blocked": u.blocked,
            "teams": teams[u.user_id],
            **audit_out(u),
        }
        for u in users
    ]


def _apply(user: User, body: UserNew | UserUpdate) -> None:
    given = body.model_fields_set
    for name in ("user_alias", "user_role", "organization_id", "models"):
        if name in given:
            setattr(user, name, getattr(body, name))
    if "user_email" in given and (isinstance(body, UserNew) or body.user_id is not None):
        user.user_email = body.user_email
    if "blocked" in given:
        user.blocked = bool(body.blocked)
    if "metadata" in given:
        user.metadata_ = merged_metadata(user.metadata_, body.metadata or {})
    apply_limits(user, body)


async def new_user(ctx: Context, body: UserNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create users")
    s = ctx.session
    user_id = body.user_id or str(uuid.uuid4())
    if await s.get(User, user_id) is not None:
        raise Conflict(f"user {user_id!r} already exists", param="user_id")
    if body.organization_id is not None:
        await require_row(s, Organization, body.organization_id, "organization", "organization_id")
    user = User(user_id=user_id, user_role=body.user_role or "internal_user", blocked=False)
    _apply(user, body)
    stamp(user, ctx.now, ctx.caller.name, created=True)
    s.add(user)
    await s.flush()
    await replace_windows(s, "user", user_id, body.budget_limits, now=ctx.now, by=ctx.caller.name)
    for ref in body.teams or ():
        team_ref = TeamRef(team_id=ref) if isinstance(ref, str) else ref
        team: Team = await require_row(s, Team, team_ref.team_id, "team", "teams")
        budget = (
            {"max_budget_nanos": nanos(team_ref.max_budget_in_team)}
            if team_ref.max_budget_in_team is not None
            else None
        )
        await _add_member(ctx, team, Member(user_id=user_id, role=team_ref.user_role), budget)
    out = (await users_out(s, [user]))[0]
    if body.auto_create_key:
        key_body = KeyGenerate(user_id=user_id, key_alias=body.key_alias, duration=body.duration)
        key = await generate_key(ctx, key_body)
        out = {**out, "key": key["key"], "token": key["token"], "key_alias": key["key_alias"]}
    else:
        out = {**out, "key": None, "token": None}
    return out


async def _user_for(ctx: Context, user_id: str | None, email: str | None) -> User:
    s = ctx.session
    if user_id is not None:
        found = await s.get(User, user_id)
    else:
        found = await s.scalar(select(User).where(User.user_email == email).limit(1))
    if found is None:
        raise NotFound(f"user {user_id or email!r} not found", param="user_id")
    return found


def _may_read(caller: Caller, user_id: str, user_teams: list[str]) -> bool:
    if caller.reads_all or user_id == caller.user_id:
        return True
    return any(caller.teams.get(t) == "admin" for t in user_teams)


async def user_info(ctx: Context, query: UserInfoQuery) -> dict[str, Any]:
    caller = ctx.caller
    s = ctx.session
    user_id = query.user_id or caller.user_id
    if user_id is None:
        raise InvalidField("give ?user_id= (the master key is not a user)", param="user_id")
    user: User = await require_row(s, User, user_id, "user", "user_id")
    out = (await users_out(s, [user]))[0]
    if not _may_read(caller, user_id, out["teams"]):
        raise PermissionDenied("you may not read this user")
    key_stmt = select(VirtualKey).where(VirtualKey.user_id == user_id)
    if not (caller.reads_all or user_id == caller.user_id):
        key_stmt = key_stmt.where(VirtualKey.team_id.in_(caller.admin_teams))
    keys = list(await s.scalars(key_stmt.order_by(VirtualKey.created_at, VirtualKey.token)))
    teams = list(await s.scalars(select(Team).where(Team.team_id.in_(out["teams"])).order_by(Team.team_id)))
    return {
        "user_id": user_id,
        "user_info": out,
        "keys": await keys_out(s, keys),
        "teams": await teams_out(s, teams),
    }


async def update_user(ctx: Context, body: UserUpdate) -> dict[str, Any]:
    caller = ctx.caller
    s = ctx.session
    user = await _user_for(ctx, body.user_id, body.user_email)
    if not caller.is_admin:
        if user.user_id != caller.user_id:
            raise PermissionDenied("you may only change your own user")
        for name in sorted(body.model_fields_set - _SELF_FREE):
            value = getattr(body, name)
            if name in _SELF_TIGHTEN:
                column = f"{name}_nanos" if name in ("max_budget", "soft_budget") else name
                new = nanos(value) if name in ("max_budget", "soft_budget") else value
                old = getattr(user, column)
                if new is None or (old is not None and new > old):
                    raise PermissionDenied(f"{name}: you may lower your own limits, not raise or remove them")
            else:
                raise PermissionDenied(f"{name}: only a proxy_admin may change it")
    if body.organization_id is not None and "organization_id" in body.model_fields_set:
        await require_row(s, Organization, body.organization_id, "organization", "organization_id")
    _apply(user, body)
    stamp(user, ctx.now, caller.name)
    await s.flush()
    if "budget_limits" in body.model_fields_set:
        await replace_windows(s, "user", user.user_id, body.budget_limits, now=ctx.now, by=caller.name)
    return (await users_out(s, [user]))[0]


async def delete_users(ctx: Context, body: UserIds) -> dict[str, Any]:
    """Delete users with their keys, memberships and budget windows."""
    require_admin(ctx.caller, "delete users")
    s = ctx.session
    for user_id in body.user_ids:
        await require_row(s, User, user_id, "user", "user_ids")
    ctx.changed_keys.extend(await delete_keys_where(s, VirtualKey.user_id.in_(body.user_ids)))
    await delete_memberships(s, TeamMembership.user_id.in_(body.user_ids))
    await s.execute(delete(OrganizationMembership).where(OrganizationMembership.user_id.in_(body.user_ids)))
    await delete_windows(s, "user", body.user_ids)
    await s.execute(delete(User).where(User.user_id.in_(body.user_ids)))
    return {"deleted_users": body.user_ids}


async def list_users(ctx: Context, query: UserListQuery) -> dict[str, Any]:
    caller = ctx.caller
    stmt = select(User)
    if not caller.reads_all:
        visible = [User.user_id == caller.user_id]
        if caller.admin_teams:
            visible.append(
                User.user_id.in_(
                    select(TeamMembership.user_id).where(TeamMembership.team_id.in_(caller.admin_teams))
                )
            )
        stmt = stmt.where(or_(*visible))
    if query.role is not None:
        stmt = stmt.where(User.user_role == query.role)
    if query.user_ids:
        stmt = stmt.where(User.user_id.in_([u.strip() for u in query.user_ids.split(",") if u.strip()]))
    if query.organization_id is not None:
        stmt = stmt.where(User.organization_id == query.organization_id)
    total = await ctx.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    users = list(
        await ctx.session.scalars(
            stmt.order_by(User.created_at, User.user_id)
            .offset((query.page - 1) * query.page_size)
            .limit(query.page_size)
        )
    )
    return {
        "users": await users_out(ctx.session, users),
        "total": total,
        "page": query.page,
        "page_size": query.page_size,
        "total_pages": math.ceil(total / query.page_size) if total else 0,
    }

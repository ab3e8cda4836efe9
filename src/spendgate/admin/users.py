"""/user/*: internal users (people and services that own keys).

proxy_admin creates, updates and deletes users. A user reads their own record and may
change their ``user_alias``, ``user_email`` and ``metadata``, and *lower* (never raise or
remove) their own limits. A team admin reads the users of their teams.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.keys import generate_key
from spendgate.admin.roles import Caller, require_admin
from spendgate.admin.schemas import (
    KeyGenerate,
    TeamRef,
    UserIds,
    UserInfoQuery,
    UserListQuery,
    UserNew,
    UserUpdate,
)
from spendgate.admin.views import keys_out, teams_out, users_out
from spendgate.entities import deletion
from spendgate.entities.codec import nanos
from spendgate.entities.memberships import add_member
from spendgate.entities.repository import Page, UserFilter
from spendgate.entities.service import ORGANIZATIONS, TEAMS, USERS
from spendgate.http.errors import InvalidField, NotFound, PermissionDenied
from spendgate.stores.database.models import Team, User

__all__ = ["delete_users", "list_users", "new_user", "update_user", "user_info"]

_SELF_FREE = frozenset({"user_id", "user_alias", "user_email", "metadata"})
_SELF_TIGHTEN = ("max_budget", "soft_budget", "tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")


def _apply(ctx: Context, user: User, body: UserNew | UserUpdate) -> None:
    if "user_email" in body.model_fields_set and (isinstance(body, UserNew) or body.user_id is not None):
        user.user_email = body.user_email
    ctx.entities.apply_fields(user, body, ("user_alias", "user_role", "organization_id", "models"))


async def new_user(ctx: Context, body: UserNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create users")
    user_id = body.user_id or str(uuid.uuid4())

    async def fill(user: User) -> None:
        if body.organization_id is not None:
            await ctx.entities.require(ORGANIZATIONS, body.organization_id, "organization_id")
        user.user_role = body.user_role or "internal_user"
        _apply(ctx, user, body)

    user = await ctx.entities.create(USERS, user_id, fill, windows=body.budget_limits)
    for ref in body.teams or ():
        team_ref = TeamRef(team_id=ref) if isinstance(ref, str) else ref
        team: Team = await ctx.entities.require(TEAMS, team_ref.team_id, "teams")
        budget = (
            {"max_budget_nanos": nanos(team_ref.max_budget_in_team)}
            if team_ref.max_budget_in_team is not None
            else None
        )
        await add_member(
            ctx.entities, team, user_id=user_id, email=None, role=team_ref.user_role, budget_fields=budget
        )
    out = (await users_out(ctx.repo, [user]))[0]
    if body.auto_create_key:
        key_body = KeyGenerate(user_id=user_id, key_alias=body.key_alias, duration=body.duration)
        key = await generate_key(ctx, key_body)
        out = {**out, "key": key["key"], "token": key["token"], "key_alias": key["key_alias"]}
    else:
        out = {**out, "key": None, "token": None}
    return out


async def _user_for(ctx: Context, user_id: str | None, email: str | None) -> User:
    found = await ctx.repo.get(User, user_id) if user_id is not None else await ctx.repo.user_by_email(email)
    if found is None:
        raise NotFound(f"user {user_id or email!r} not found", param="user_id")
    return found


def _may_read(caller: Caller, user_id: str, user_teams: list[str]) -> bool:
    if caller.reads_all or user_id == caller.user_id:
        return True
    return any(caller.teams.get(t) == "admin" for t in user_teams)


async def user_info(ctx: Context, query: UserInfoQuery) -> dict[str, Any]:
    caller = ctx.caller
    user_id = query.user_id or caller.user_id
    if user_id is None:
        raise InvalidField("give ?user_id= (the master key is not a user)", param="user_id")
    user: User = await ctx.entities.require(USERS, user_id, "user_id")
    at = ctx.spend_at
    out = (await users_out(ctx.repo, [user], spend=at))[0]
    if not _may_read(caller, user_id, out["teams"]):
        raise PermissionDenied("you may not read this user")
    own = caller.reads_all or user_id == caller.user_id
    keys = await ctx.repo.keys_of(user_id=user_id, teams=None if own else caller.admin_teams)
    teams = await ctx.repo.teams(out["teams"])
    return {
        "user_id": user_id,
        "user_info": out,
        "keys": await keys_out(ctx.repo, keys, spend=at),
        "teams": await teams_out(ctx.repo, teams, spend=at),
    }


async def update_user(ctx: Context, body: UserUpdate) -> dict[str, Any]:
    caller = ctx.caller
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
    await ctx.entities.check_refs(body, [("organization_id", ORGANIZATIONS)])
    _apply(ctx, user, body)
    await ctx.entities.save(USERS, user, body)
    return (await users_out(ctx.repo, [user]))[0]


async def delete_users(ctx: Context, body: UserIds) -> dict[str, Any]:
    """Delete users with their keys, memberships and budget windows."""
    require_admin(ctx.caller, "delete users")
    ctx.changed_keys.extend(await deletion.delete_users(ctx.entities, body.user_ids, "user_ids"))
    return {"deleted_users": body.user_ids}


async def list_users(ctx: Context, query: UserListQuery) -> dict[str, Any]:
    caller = ctx.caller
    where = UserFilter(
        restricted=not caller.reads_all,
        visible_to=caller.user_id,
        admin_teams=caller.admin_teams,
        role=query.role,
        user_ids=[u.strip() for u in query.user_ids.split(",") if u.strip()] if query.user_ids else None,
        organization_id=query.organization_id,
        search=query.search,
    )
    total, users = await ctx.repo.list_users(where, Page(query.page, query.page_size))
    spend = ctx.spend_at if query.with_spend else None
    return {
        "users": await users_out(ctx.repo, users, spend=spend),
        "total": total,
        "page": query.page,
        "page_size": query.page_size,
        "total_pages": math.ceil(total / query.page_size) if total else 0,
    }

"""/team/*: teams and their members (a member's own budget inside the team).

proxy_admin creates, updates and deletes teams. A team admin (a member with role
``admin``) manages the team's members and their in-team budgets, and may change the team's
``team_alias``, ``metadata`` and ``tags``. Every member may read their team.

A member's budget (``max_budget_in_team``, ``budget_duration``, ``tpm_limit``,
``rpm_limit``, ``allowed_models``) is a ``budgets`` row owned by the membership: it is
created with it and deleted with it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.admin._http import Context
from spendgate.admin.convert import (
    apply_limits,
    audit_out,
    budget_row,
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
)
from spendgate.admin.keys import delete_keys_where, keys_out
from spendgate.admin.roles import Caller, require_admin
from spendgate.admin.schemas import (
    Member,
    TeamIds,
    TeamInfoQuery,
    TeamListQuery,
    TeamMemberAdd,
    TeamMemberDelete,
    TeamMemberUpdate,
    TeamNew,
    TeamUpdate,
)
from spendgate.http.errors import Conflict, InvalidField, NotFound, PermissionDenied
from spendgate.stores.database.models import (
    Budget,
    EndCustomer,
    Organization,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

__all__ = [
    "add_members",
    "delete_memberships",
    "delete_team",
    "list_teams",
    "member_delete",
    "member_update",
    "membership_out",
    "new_team",
    "team_info",
    "teams_out",
    "update_team",
]

_TEAM_ADMIN_FIELDS = frozenset({"team_id", "team_alias", "metadata", "tags"})


def _team_out(team: Team, windows: list[dict[str, Any]], members: list[dict[str, Any]]) -> dict[str, Any]:
    metadata = team.metadata_ or {}
    return {
        "team_id": team.team_id,
        "team_alias": team.team_alias,
        "organization_id": team.organization_id,
        "models": team.models or [],
        **limits_out(team),
        "budget_limits": windows,
        "budget_id": team.budget_id,
        "metadata": public_metadata(team.metadata_),
        "tags": metadata.get("tags") or [],
        "blocked": team.blocked,
        "members_with_roles": members,
        **audit_out(team),
    }


async def teams_out(session: AsyncSession, teams: list[Team]) -> list[dict[str, Any]]:
    ids = [t.team_id for t in teams]
    windows = await load_windows(session, "team", ids)
    members: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        rows = await session.execute(
            select(TeamMembership.team_id, TeamMembership.user_id, TeamMembership.role, User.user_email)
            .join(User, User.user_id == TeamMembership.user_id)
            .where(TeamMembership.team_id.in_(ids))
            .order_by(TeamMembership.team_id, TeamMembership.user_id)
        )
        for team_id, user_id, role, email in rows:
            members[team_id].append({"user_id": user_id, "role": role, "user_email": email})
    return [_team_out(t, windows[t.team_id], members[t.team_id]) for t in teams]


def membership_out(m: TeamMembership, budget: Budget | None) -> dict[str, Any]:
    return {
        "user_id": m.user_id,
        "team_id": m.team_id,
        "role": m.role,
        "budget_id": m.budget_id,
        "max_budget_in_team": usd(budget.max_budget_nanos) if budget else None,
        "litellm_budget_table": budget_row(budget),
    }


async def _memberships_out(session: AsyncSession, rows: list[TeamMembership]) -> list[dict[str, Any]]:
    ids = [m.budget_id for m in rows if m.budget_id]
    budgets = {b.budget_id: b for b in await session.scalars(select(Budget).where(Budget.budget_id.in_(ids)))}
    return [membership_out(m, budgets.get(m.budget_id) if m.budget_id else None) for m in rows]


async def delete_memberships(session: AsyncSession, *conditions: Any) -> None:
    """Delete memberships and the budget rows they own."""
    rows = list(await session.scalars(select(TeamMembership).where(*conditions)))
    budget_ids = [m.budget_id for m in rows if m.budget_id]
    for m in rows:
        await session.delete(m)
    await session.flush()
    if budget_ids:
        await session.execute(delete(Budget).where(Budget.budget_id.in_(budget_ids)))


async def _user_for(ctx: Context, member: Member) -> User:
    """The member's user, created as an internal_user if it does not exist yet."""
    s = ctx.session
    user: User | None = None
    if member.user_id is not None:
        user = await s.get(User, member.user_id)
    elif member.user_email is not None:
        user = await s.scalar(select(User).where(User.user_email == member.user_email).limit(1))
    if user is None:
        user = User(
            user_id=member.user_id or str(uuid.uuid4()),
            user_email=member.user_email,
            user_role="internal_user",
            blocked=False,
        )
        stamp(user, ctx.now, ctx.caller.name, created=True)
        s.add(user)
        await s.flush()
    return user


async def _add_member(
    ctx: Context,
    team: Team,
    member: Member,
    budget_fields: dict[str, Any] | None,
) -> tuple[User, TeamMembership]:
    s = ctx.session
    user = await _user_for(ctx, member)
    if await s.get(TeamMembership, (user.user_id, team.team_id)) is not None:
        raise Conflict(f"user {user.user_id!r} is already a member of team {team.team_id!r}", param="member")
    m = TeamMembership(user_id=user.user_id, team_id=team.team_id, role=member.role)
    if budget_fields:
        budget = Budget(budget_id=str(uuid.uuid4()), **budget_fields)
        stamp(budget, ctx.now, ctx.caller.name, created=True)
        s.add(budget)
        await s.flush()
        m.budget_id = budget.budget_id
    stamp(m, ctx.now, ctx.caller.name, created=True)
    s.add(m)
    await s.flush()
    return user, m


def _team_admin_or_403(caller: Caller, team_id: str) -> None:
    if not caller.admins_team(team_id):
        raise PermissionDenied(f"only a proxy_admin or an admin of team {team_id!r} may do this")


async def new_team(ctx: Context, body: TeamNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create teams")
    s = ctx.session
    team_id = body.team_id or str(uuid.uuid4())
    if await s.get(Team, team_id) is not None:
        raise Conflict(f"team {team_id!r} already exists", param="team_id")
    team = Team(team_id=team_id, blocked=False)
    await _apply(ctx, team, body)
    stamp(team, ctx.now, ctx.caller.name, created=True)
    s.add(team)
    await s.flush()
    await replace_windows(s, "team", team_id, body.budget_limits, now=ctx.now, by=ctx.caller.name)
    for member in body.members_with_roles or ():
        await _add_member(ctx, team, member, None)
    return (await teams_out(s, [team]))[0]


async def _apply(ctx: Context, team: Team, body: TeamNew | TeamUpdate) -> None:
    given = body.model_fields_set
    s = ctx.session
    if body.organization_id is not None and "organization_id" in given:
        await require_row(s, Organization, body.organization_id, "organization", "organization_id")
    if body.budget_id is not None and "budget_id" in given:
        await require_row(s, Budget, body.budget_id, "budget", "budget_id")
    for name in ("team_alias", "organization_id", "models", "budget_id"):
        if name in given:
            setattr(team, name, getattr(body, name))
    if "blocked" in given:
        team.blocked = bool(body.blocked)
    if "metadata" in given:
        team.metadata_ = merged_metadata(team.metadata_, body.metadata or {})
    if "tags" in given:
        team.metadata_ = {**(team.metadata_ or {}), "tags": body.tags or []}
    apply_limits(team, body)


async def update_team(ctx: Context, body: TeamUpdate) -> dict[str, Any]:
    s = ctx.session
    team: Team = await require_row(s, Team, body.team_id, "team", "team_id")
    _team_admin_or_403(ctx.caller, team.team_id)
    if not ctx.caller.is_admin:
        for name in sorted(body.model_fields_set - _TEAM_ADMIN_FIELDS):
            raise PermissionDenied(f"{name}: only a proxy_admin may change it")
    await _apply(ctx, team, body)
    stamp(team, ctx.now, ctx.caller.name)
    await s.flush()
    if "budget_limits" in body.model_fields_set:
        await replace_windows(s, "team", team.team_id, body.budget_limits, now=ctx.now, by=ctx.caller.name)
    return (await teams_out(s, [team]))[0]


async def team_info(ctx: Context, query: TeamInfoQuery) -> dict[str, Any]:
    s = ctx.session
    team: Team = await require_row(s, Team, query.team_id, "team", "team_id")
    caller = ctx.caller
    if not (caller.reads_all or caller.in_team(team.team_id)):
        raise PermissionDenied(f"you are not a member of team {team.team_id!r}")
    key_stmt = select(VirtualKey).where(VirtualKey.team_id == team.team_id)
    if not (caller.reads_all or caller.teams.get(team.team_id) == "admin"):
        key_stmt = key_stmt.where(VirtualKey.user_id == caller.user_id)
    keys = list(await s.scalars(key_stmt.order_by(VirtualKey.created_at, VirtualKey.token)))
    memberships = list(
        await s.scalars(
            select(TeamMembership)
            .where(TeamMembership.team_id == team.team_id)
            .order_by(TeamMembership.user_id)
        )
    )
    return {
        "team_id": team.team_id,
        "team_info": (await teams_out(s, [team]))[0],
        "keys": await keys_out(s, keys),
        "team_memberships": await _memberships_out(s, memberships),
    }


async def list_teams(ctx: Context, query: TeamListQuery) -> list[dict[str, Any]]:
    caller = ctx.caller
    stmt = select(Team)
    if not caller.reads_all:
        stmt = stmt.where(Team.team_id.in_(list(caller.teams)))
    if query.organization_id is not None:
        stmt = stmt.where(Team.organization_id == query.organization_id)
    if query.user_id is not None:
        stmt = stmt.where(
            Team.team_id.in_(select(TeamMembership.team_id).where(TeamMembership.user_id == query.user_id))
        )
    teams = list(await ctx.session.scalars(stmt.order_by(Team.created_at, Team.team_id)))
    return await teams_out(ctx.session, teams)


async def delete_team(ctx: Context, body: TeamIds) -> dict[str, Any]:
    require_admin(ctx.caller, "delete teams")
    s = ctx.session
    for team_id in body.team_ids:
        await require_row(s, Team, team_id, "team", "team_ids")
    # Un-owning them silently would let any key bill them.
    owned = await s.scalar(select(func.count()).where(EndCustomer.team_id.in_(body.team_ids)))
    if owned:
        raise Conflict(f"the team still has {owned} customers: move or delete them first", param="team_ids")
    ctx.changed_keys.extend(await delete_keys_where(s, VirtualKey.team_id.in_(body.team_ids)))
    await delete_memberships(s, TeamMembership.team_id.in_(body.team_ids))
    await delete_windows(s, "team", body.team_ids)
    await s.execute(delete(Team).where(Team.team_id.in_(body.team_ids)))
    return {"deleted_teams": body.team_ids}


def _member_budget_fields(body: TeamMemberAdd | TeamMemberUpdate) -> dict[str, Any]:
    given = body.model_fields_set
    fields: dict[str, Any] = {}
    if "max_budget_in_team" in given:
        fields["max_budget_nanos"] = nanos(body.max_budget_in_team)
    for name in ("budget_duration", "allowed_models"):
        if name in given:
            fields[name] = getattr(body, name)
    for name in ("tpm_limit", "rpm_limit"):
        if name in given:
            fields[name] = getattr(body, name)
    return fields


async def add_members(ctx: Context, body: TeamMemberAdd) -> dict[str, Any]:
    s = ctx.session
    team: Team = await require_row(s, Team, body.team_id, "team", "team_id")
    _team_admin_or_403(ctx.caller, team.team_id)
    members = body.member if isinstance(body.member, list) else [body.member]
    if not members:
        raise InvalidField("member: give at least one member", param="member")
    budget_fields = _member_budget_fields(body)
    users: list[User] = []
    memberships: list[TeamMembership] = []
    for member in members:
        user, m = await _add_member(ctx, team, member, budget_fields)
        users.append(user)
        memberships.append(m)
    from spendgate.admin.users import users_out  # users imports teams: resolve at call time

    return {
        **(await teams_out(s, [team]))[0],
        "updated_users": await users_out(s, users),
        "updated_team_memberships": await _memberships_out(s, memberships),
    }


async def _membership_or_404(
    ctx: Context, team_id: str, user_id: str | None, email: str | None
) -> TeamMembership:
    s = ctx.session
    if user_id is None:
        user_id = await s.scalar(select(User.user_id).where(User.user_email == email).limit(1))
    m = await s.get(TeamMembership, (user_id, team_id)) if user_id is not None else None
    if m is None:
        raise NotFound(f"{user_id or email!r} is not a member of team {team_id!r}", param="user_id")
    return m


async def member_update(ctx: Context, body: TeamMemberUpdate) -> dict[str, Any]:
    s = ctx.session
    await require_row(s, Team, body.team_id, "team", "team_id")
    _team_admin_or_403(ctx.caller, body.team_id)
    m = await _membership_or_404(ctx, body.team_id, body.user_id, body.user_email)
    if body.role is not None:
        m.role = body.role
    fields = _member_budget_fields(body)
    budget = await s.get(Budget, m.budget_id) if m.budget_id else None
    if fields and budget is None:
        budget = Budget(budget_id=str(uuid.uuid4()), **fields)
        stamp(budget, ctx.now, ctx.caller.name, created=True)
        s.add(budget)
        await s.flush()
        m.budget_id = budget.budget_id
    elif fields and budget is not None:
        for name, value in fields.items():
            setattr(budget, name, value)
        stamp(budget, ctx.now, ctx.caller.name)
    stamp(m, ctx.now, ctx.caller.name)
    await s.flush()
    return membership_out(m, budget)


async def member_delete(ctx: Context, body: TeamMemberDelete) -> dict[str, Any]:
    s = ctx.session
    team: Team = await require_row(s, Team, body.team_id, "team", "team_id")
    _team_admin_or_403(ctx.caller, team.team_id)
    m = await _membership_or_404(ctx, body.team_id, body.user_id, body.user_email)
    user_id = m.user_id
    # A removed member's keys in the team would keep spending the team's budget.
    ctx.changed_keys.extend(
        await delete_keys_where(s, VirtualKey.team_id == team.team_id, VirtualKey.user_id == user_id)
    )
    await delete_memberships(s, TeamMembership.team_id == team.team_id, TeamMembership.user_id == user_id)
    return (await teams_out(s, [team]))[0]

"""/team/*: teams and their members (a member's own budget inside the team).

proxy_admin creates, updates and deletes teams. A team admin (a member with role
``admin``) manages the team's members and their in-team budgets, and may change the team's
``team_alias``, ``metadata`` and ``tags``. Every member may read their team.

Membership rules (a member's budget row, users made on the fly) are in
:mod:`spendgate.entities.memberships`.
"""

from __future__ import annotations

import uuid
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.roles import Caller, require_admin
from spendgate.admin.schemas import (
    TeamBlock,
    TeamIds,
    TeamInfoQuery,
    TeamListQuery,
    TeamMemberAdd,
    TeamMemberDelete,
    TeamMemberUpdate,
    TeamNew,
    TeamUpdate,
)
from spendgate.admin.views import keys_out, membership_out, memberships_out, page_of, teams_out, users_out
from spendgate.entities import deletion
from spendgate.entities.keys import delete_keys_of
from spendgate.entities.memberships import (
    add_member,
    delete_memberships,
    member_budget_fields,
    membership_of,
    set_member_budget,
)
from spendgate.entities.service import BUDGETS, ORGANIZATIONS, TEAMS
from spendgate.http.errors import InvalidField, PermissionDenied
from spendgate.stores.database.models import Team, TeamMembership, User

__all__ = [
    "add_members",
    "block_team",
    "delete_team",
    "list_teams",
    "member_delete",
    "member_update",
    "new_team",
    "team_info",
    "unblock_team",
    "update_team",
]

_TEAM_ADMIN_FIELDS = frozenset({"team_id", "team_alias", "metadata", "tags"})


def _team_admin_or_403(caller: Caller, team_id: str) -> None:
    if not caller.admins_team(team_id):
        raise PermissionDenied(f"only a proxy_admin or an admin of team {team_id!r} may do this")


async def _apply(ctx: Context, team: Team, body: TeamNew | TeamUpdate) -> None:
    await ctx.entities.check_refs(body, [("organization_id", ORGANIZATIONS), ("budget_id", BUDGETS)])

    def tags(row: Team) -> None:
        if "tags" in body.model_fields_set:
            row.metadata_ = {**(row.metadata_ or {}), "tags": body.tags or []}

    ctx.entities.apply_fields(team, body, ("team_alias", "organization_id", "models", "budget_id"), then=tags)


async def new_team(ctx: Context, body: TeamNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create teams")

    async def fill(team: Team) -> None:
        await _apply(ctx, team, body)

    team = await ctx.entities.create(
        TEAMS, body.team_id or str(uuid.uuid4()), fill, windows=body.budget_limits
    )
    for member in body.members_with_roles or ():
        await add_member(
            ctx.entities,
            team,
            user_id=member.user_id,
            email=member.user_email,
            role=member.role,
            budget_fields=None,
        )
    return (await teams_out(ctx.repo, [team]))[0]


async def update_team(ctx: Context, body: TeamUpdate) -> dict[str, Any]:
    team: Team = await ctx.entities.require(TEAMS, body.team_id, "team_id")
    _team_admin_or_403(ctx.caller, team.team_id)
    if not ctx.caller.is_admin:
        for name in sorted(body.model_fields_set - _TEAM_ADMIN_FIELDS):
            raise PermissionDenied(f"{name}: only a proxy_admin may change it")
    await _apply(ctx, team, body)
    await ctx.entities.save(TEAMS, team, body)
    return (await teams_out(ctx.repo, [team]))[0]


async def team_info(ctx: Context, query: TeamInfoQuery) -> dict[str, Any]:
    team: Team = await ctx.entities.require(TEAMS, query.team_id, "team_id")
    caller = ctx.caller
    if not (caller.reads_all or caller.in_team(team.team_id)):
        raise PermissionDenied(f"you are not a member of team {team.team_id!r}")
    sees_all = caller.reads_all or caller.teams.get(team.team_id) == "admin"
    keys = await ctx.repo.keys_of(team_id=team.team_id, user_id=None if sees_all else caller.user_id)
    at = ctx.spend_at
    return {
        "team_id": team.team_id,
        "team_info": (await teams_out(ctx.repo, [team], spend=at))[0],
        "keys": await keys_out(ctx.repo, keys, spend=at),
        "team_memberships": await memberships_out(
            ctx.repo, await ctx.repo.memberships_of_team(team.team_id), at
        ),
    }


async def list_teams(ctx: Context, query: TeamListQuery) -> list[dict[str, Any]]:
    teams = await ctx.repo.list_teams(
        among=None if ctx.caller.reads_all else list(ctx.caller.teams),
        organization_id=query.organization_id,
        user_id=query.user_id,
        search=query.search,
    )
    spend = ctx.spend_at if query.with_spend else None
    return await teams_out(ctx.repo, page_of(teams, query.page, query.page_size), spend=spend)


async def delete_team(ctx: Context, body: TeamIds) -> dict[str, Any]:
    require_admin(ctx.caller, "delete teams")
    ctx.changed_keys.extend(await deletion.delete_teams(ctx.entities, body.team_ids, "team_ids"))
    return {"deleted_teams": body.team_ids}


async def _set_blocked(ctx: Context, body: TeamBlock, blocked: bool) -> dict[str, Any]:
    """A blocked team's keys are refused by the gateway (403 ``team_blocked``); blocking is
    a proxy_admin's, as ``blocked`` on /team/update is. Every write drops the gateway's
    cached look-ups, so it takes effect on this instance at once."""
    require_admin(ctx.caller, "block or unblock teams")
    team: Team = await ctx.entities.require(TEAMS, body.team_id, "team_id")
    team.blocked = blocked
    await ctx.entities.save(TEAMS, team)
    return (await teams_out(ctx.repo, [team]))[0]


async def block_team(ctx: Context, body: TeamBlock) -> dict[str, Any]:
    return await _set_blocked(ctx, body, True)


async def unblock_team(ctx: Context, body: TeamBlock) -> dict[str, Any]:
    return await _set_blocked(ctx, body, False)


async def add_members(ctx: Context, body: TeamMemberAdd) -> dict[str, Any]:
    team: Team = await ctx.entities.require(TEAMS, body.team_id, "team_id")
    _team_admin_or_403(ctx.caller, team.team_id)
    members = body.member if isinstance(body.member, list) else [body.member]
    if not members:
        raise InvalidField("member: give at least one member", param="member")
    budget_fields = member_budget_fields(body)
    users: list[User] = []
    memberships: list[TeamMembership] = []
    for member in members:
        user, m = await add_member(
            ctx.entities,
            team,
            user_id=member.user_id,
            email=member.user_email,
            role=member.role,
            budget_fields=budget_fields,
        )
        users.append(user)
        memberships.append(m)
    return {
        **(await teams_out(ctx.repo, [team]))[0],
        "updated_users": await users_out(ctx.repo, users),
        "updated_team_memberships": await memberships_out(ctx.repo, memberships, ctx.spend_at),
    }


async def member_update(ctx: Context, body: TeamMemberUpdate) -> dict[str, Any]:
    await ctx.entities.require(TEAMS, body.team_id, "team_id")
    _team_admin_or_403(ctx.caller, body.team_id)
    m = await membership_of(ctx.entities, body.team_id, body.user_id, body.user_email)
    if body.role is not None:
        m.role = body.role
    budget = await set_member_budget(ctx.entities, m, member_budget_fields(body))
    ctx.entities.stamp(m)
    await ctx.repo.flush()
    return membership_out(m, budget, ctx.spend_at)


async def member_delete(ctx: Context, body: TeamMemberDelete) -> dict[str, Any]:
    team: Team = await ctx.entities.require(TEAMS, body.team_id, "team_id")
    _team_admin_or_403(ctx.caller, team.team_id)
    m = await membership_of(ctx.entities, body.team_id, body.user_id, body.user_email)
    user_id = m.user_id
    # A removed member's keys in the team would keep spending the team's budget.
    ctx.changed_keys.extend(await delete_keys_of(ctx.entities, team_ids=[team.team_id], user_ids=[user_id]))
    await delete_memberships(ctx.entities, team_ids=[team.team_id], user_ids=[user_id])
    return (await teams_out(ctx.repo, [team]))[0]

"""/organization/*: organizations (a level above teams).

proxy_admin creates, updates and deletes; proxy_admin_viewer reads all; a member of an
organization (``users.organization_id`` or an organization membership) reads it. An
organization that still has teams, users or keys cannot be deleted (409).
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
    delete_windows,
    limits_out,
    load_windows,
    merged_metadata,
    public_metadata,
    replace_windows,
    require_row,
    stamp,
)
from spendgate.admin.roles import require_admin
from spendgate.admin.schemas import (
    OrganizationIds,
    OrganizationInfoQuery,
    OrganizationListQuery,
    OrganizationNew,
    OrganizationUpdate,
)
from spendgate.http.errors import Conflict, PermissionDenied
from spendgate.stores.database.models import (
    Budget,
    EndCustomer,
    Organization,
    OrganizationMembership,
    Team,
    User,
    VirtualKey,
)

__all__ = [
    "delete_organizations",
    "list_organizations",
    "new_organization",
    "organization_info",
    "organizations_out",
    "update_organization",
]

_SCOPE = "organization"


async def organizations_out(session: AsyncSession, orgs: list[Organization]) -> list[dict[str, Any]]:
    ids = [o.organization_id for o in orgs]
    windows = await load_windows(session, _SCOPE, ids)
    teams: dict[str, list[str]] = {i: [] for i in ids}
    members: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for org_id, team_id in await session.execute(
            select(Team.organization_id, Team.team_id)
            .where(Team.organization_id.in_(ids))
            .order_by(Team.team_id)
        ):
            if org_id is not None:
                teams[org_id].append(team_id)
        for org_id, user_id, role in await session.execute(
            select(
                OrganizationMembership.organization_id,
                OrganizationMembership.user_id,
                OrganizationMembership.user_role,
            )
            .where(OrganizationMembership.organization_id.in_(ids))
            .order_by(OrganizationMembership.user_id)
        ):
            members[org_id].append({"user_id": user_id, "user_role": role})
    return [
        {
            "organization_id": o.organization_id,
            "organization_alias": o.organization_alias,
            "budget_id": o.budget_id,
            "models": o.models or [],
            **limits_out(o),
            "budget_limits": windows[o.organization_id],
            "metadata": public_metadata(o.metadata_),
            "blocked": o.blocked,
            "teams": teams[o.organization_id],
            "members": members[o.organization_id],
            **audit_out(o),
        }
        for o in orgs
    ]


async def _apply(ctx: Context, org: Organization, body: OrganizationNew | OrganizationUpdate) -> None:
    given = body.model_fields_set
    if body.budget_id is not None and "budget_id" in given:
        await require_row(ctx.session, Budget, body.budget_id, "budget", "budget_id")
    for name in ("organization_alias", "models", "budget_id"):
        if name in given:
            setattr(org, name, getattr(body, name))
    if "blocked" in given:
        org.blocked = bool(body.blocked)
    if "metadata" in given:
        org.metadata_ = merged_metadata(org.metadata_, body.metadata or {})
    apply_limits(org, body)


async def new_organization(ctx: Context, body: OrganizationNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create organizations")
    s = ctx.session
    org_id = body.organization_id or str(uuid.uuid4())
    if await s.get(Organization, org_id) is not None:
        raise Conflict(f"organization {org_id!r} already exists", param="organization_id")
    org = Organization(organization_id=org_id, blocked=False)
    await _apply(ctx, org, body)
    stamp(org, ctx.now, ctx.caller.name, created=True)
    s.add(org)
    await s.flush()
    await replace_windows(s, _SCOPE, org_id, body.budget_limits, now=ctx.now, by=ctx.caller.name)
    return (await organizations_out(s, [org]))[0]


async def update_organization(ctx: Context, body: OrganizationUpdate) -> dict[str, Any]:
    require_admin(ctx.caller, "change organizations")
    s = ctx.session
    org: Organization = await require_row(
        s, Organization, body.organization_id, "organization", "organization_id"
    )
    await _apply(ctx, org, body)
    stamp(org, ctx.now, ctx.caller.name)
    await s.flush()
    if "budget_limits" in body.model_fields_set:
        await replace_windows(
            s, _SCOPE, org.organization_id, body.budget_limits, now=ctx.now, by=ctx.caller.name
        )
    return (await organizations_out(s, [org]))[0]


async def organization_info(ctx: Context, query: OrganizationInfoQuery) -> dict[str, Any]:
    s = ctx.session
    org: Organization = await require_row(
        s, Organization, query.organization_id, "organization", "organization_id"
    )
    if not (ctx.caller.reads_all or org.organization_id in ctx.caller.organization_ids):
        raise PermissionDenied(f"you are not a member of organization {org.organization_id!r}")
    return (await organizations_out(s, [org]))[0]


async def list_organizations(ctx: Context, query: OrganizationListQuery) -> list[dict[str, Any]]:
    stmt = select(Organization)
    if not ctx.caller.reads_all:
        stmt = stmt.where(Organization.organization_id.in_(sorted(ctx.caller.organization_ids)))
    if query.org_alias is not None:
        stmt = stmt.where(Organization.organization_alias == query.org_alias)
    orgs = list(
        await ctx.session.scalars(stmt.order_by(Organization.created_at, Organization.organization_id))
    )
    return await organizations_out(ctx.session, orgs)


async def delete_organizations(ctx: Context, body: OrganizationIds) -> dict[str, Any]:
    require_admin(ctx.caller, "delete organizations")
    s = ctx.session
    ids = body.organization_ids
    for org_id in ids:
        await require_row(s, Organization, org_id, "organization", "organization_ids")
    owned: tuple[tuple[Any, str], ...] = (
        (Team, "teams"),
        (User, "users"),
        (VirtualKey, "keys"),
        (EndCustomer, "customers"),  # un-owning them silently would let any key bill them
    )
    for model, what in owned:
        count = await s.scalar(select(func.count()).where(model.organization_id.in_(ids)))
        if count:
            raise Conflict(
                f"the organization still has {count} {what}: move or delete them first",
                param="organization_ids",
            )
    await s.execute(delete(OrganizationMembership).where(OrganizationMembership.organization_id.in_(ids)))
    await delete_windows(s, _SCOPE, ids)
    await s.execute(delete(Organization).where(Organization.organization_id.in_(ids)))
    return {"deleted_organizations": ids}

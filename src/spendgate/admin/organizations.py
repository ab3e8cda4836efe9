"""/organization/*: organizations (a level above teams).

proxy_admin creates, updates and deletes; proxy_admin_viewer reads all; a member of an
organization (``users.organization_id`` or an organization membership) reads it. An
organization that still has teams, users or keys cannot be deleted (409).
"""

from __future__ import annotations

import uuid
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.roles import require_admin
from spendgate.admin.schemas import (
    OrganizationIds,
    OrganizationInfoQuery,
    OrganizationListQuery,
    OrganizationNew,
    OrganizationUpdate,
)
from spendgate.admin.views import organizations_out, page_of
from spendgate.entities import deletion
from spendgate.entities.service import BUDGETS, ORGANIZATIONS
from spendgate.http.errors import PermissionDenied
from spendgate.stores.database.models import Organization

__all__ = [
    "delete_organizations",
    "list_organizations",
    "new_organization",
    "organization_info",
    "update_organization",
]


async def _apply(ctx: Context, org: Organization, body: OrganizationNew | OrganizationUpdate) -> None:
    await ctx.entities.check_refs(body, [("budget_id", BUDGETS)])
    ctx.entities.apply_fields(org, body, ("organization_alias", "models", "budget_id"))


async def new_organization(ctx: Context, body: OrganizationNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create organizations")

    async def fill(org: Organization) -> None:
        await _apply(ctx, org, body)

    org_id = body.organization_id or str(uuid.uuid4())
    org = await ctx.entities.create(ORGANIZATIONS, org_id, fill, windows=body.budget_limits)
    return (await organizations_out(ctx.repo, [org]))[0]


async def update_organization(ctx: Context, body: OrganizationUpdate) -> dict[str, Any]:
    require_admin(ctx.caller, "change organizations")
    org: Organization = await ctx.entities.require(ORGANIZATIONS, body.organization_id, "organization_id")
    await _apply(ctx, org, body)
    await ctx.entities.save(ORGANIZATIONS, org, body)
    return (await organizations_out(ctx.repo, [org]))[0]


async def organization_info(ctx: Context, query: OrganizationInfoQuery) -> dict[str, Any]:
    org: Organization = await ctx.entities.require(ORGANIZATIONS, query.organization_id, "organization_id")
    if not (ctx.caller.reads_all or org.organization_id in ctx.caller.organization_ids):
        raise PermissionDenied(f"you are not a member of organization {org.organization_id!r}")
    return (await organizations_out(ctx.repo, [org], spend=ctx.spend_at))[0]


async def list_organizations(ctx: Context, query: OrganizationListQuery) -> list[dict[str, Any]]:
    among = None if ctx.caller.reads_all else sorted(ctx.caller.organization_ids)
    orgs = page_of(
        await ctx.repo.list_organizations(among=among, alias=query.org_alias), query.page, query.page_size
    )
    spend = ctx.spend_at if query.with_spend else None
    return await organizations_out(ctx.repo, orgs, spend=spend)


async def delete_organizations(ctx: Context, body: OrganizationIds) -> dict[str, Any]:
    require_admin(ctx.caller, "delete organizations")
    await deletion.delete_organizations(ctx.entities, body.organization_ids, "organization_ids")
    return {"deleted_organizations": body.organization_ids}

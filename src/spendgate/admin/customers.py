"""/customer/* (alias /end_user/*): end customers, billed through the ``user`` field of a
request or through a key bound to them (``end_user_id``).

proxy_admin manages customers; proxy_admin_viewer reads them; other roles have no access.
A customer that keys are bound to cannot be deleted (409): unbinding silently would let
those keys name any customer.

``team_id`` / ``organization_id`` say which tenant a customer belongs to: the gateway then
lets only that team's (organization's) keys bill it by naming it in a request (403
otherwise; docs/enforcement.md "Whose customer").
"""

from __future__ import annotations

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
    public_metadata,
    replace_windows,
    require_row,
    stamp,
)
from spendgate.admin.roles import require_admin, require_reader
from spendgate.admin.schemas import CustomerIds, CustomerInfoQuery, CustomerNew, CustomerUpdate, Empty
from spendgate.http.errors import Conflict, InvalidField
from spendgate.stores.database.models import Budget, EndCustomer, Organization, Team, VirtualKey

__all__ = [
    "block_customers",
    "customer_info",
    "customers_out",
    "delete_customers",
    "list_customers",
    "new_customer",
    "unblock_customers",
    "update_customer",
]

_SCOPE = "end_user"


async def customers_out(session: AsyncSession, rows: list[EndCustomer]) -> list[dict[str, Any]]:
    ids = [c.user_id for c in rows]
    windows = await load_windows(session, _SCOPE, ids)
    budget_ids = [c.budget_id for c in rows if c.budget_id]
    budgets = {
        b.budget_id: b for b in await session.scalars(select(Budget).where(Budget.budget_id.in_(budget_ids)))
    }
    return [
        {
            "user_id": c.user_id,
            "alias": c.alias,
            "team_id": c.team_id,
            "organization_id": c.organization_id,
            "blocked": c.blocked,
            "budget_id": c.budget_id,
            "allowed_model_region": c.allowed_model_region,
            "default_model": c.default_model,
            "models": c.models or [],
            **limits_out(c),
            "budget_limits": windows[c.user_id],
            "metadata": public_metadata(c.metadata_),
            "litellm_budget_table": budget_row(budgets.get(c.budget_id) if c.budget_id else None),
            **audit_out(c),
        }
        for c in rows
    ]


async def _apply(ctx: Context, c: EndCustomer, body: CustomerNew | CustomerUpdate) -> None:
    given = body.model_fields_set
    if body.budget_id is not None and body.max_budget is not None:
        raise InvalidField("give budget_id or max_budget, not both", param="budget_id")
    if body.budget_id is not None and "budget_id" in given:
        await require_row(ctx.session, Budget, body.budget_id, "budget", "budget_id")
    await _check_owner(ctx, c, body)
    for name in (
        "alias",
        "team_id",
        "organization_id",
        "budget_id",
        "allowed_model_region",
        "default_model",
        "models",
    ):
        if name in given:
            setattr(c, name, getattr(body, name))
    if "blocked" in given:
        c.blocked = bool(body.blocked)
    if "metadata" in given:
        c.metadata_ = merged_metadata(c.metadata_, body.metadata or {})
    apply_limits(c, body)


async def _check_owner(ctx: Context, c: EndCustomer, body: CustomerNew | CustomerUpdate) -> None:
    """404 for an unknown team or organization; 422 for a team outside the organization."""
    given = body.model_fields_set
    team_id = body.team_id if "team_id" in given else c.team_id
    org_id = body.organization_id if "organization_id" in given else c.organization_id
    if body.organization_id is not None and "organization_id" in given:
        await require_row(ctx.session, Organization, body.organization_id, "organization", "organization_id")
    if team_id is None:
        return
    team: Team = await require_row(ctx.session, Team, team_id, "team", "team_id")
    if org_id is not None and team.organization_id != org_id:
        raise InvalidField(
            f"team {team_id!r} does not belong to organization {org_id!r}", param="organization_id"
        )


async def new_customer(ctx: Context, body: CustomerNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create customers")
    s = ctx.session
    if await s.get(EndCustomer, body.user_id) is not None:
        raise Conflict(f"customer {body.user_id!r} already exists", param="user_id")
    c = EndCustomer(user_id=body.user_id, blocked=False)
    await _apply(ctx, c, body)
    stamp(c, ctx.now, ctx.caller.name, created=True)
    s.add(c)
    await s.flush()
    await replace_windows(s, _SCOPE, c.user_id, body.budget_limits, now=ctx.now, by=ctx.caller.name)
    return (await customers_out(s, [c]))[0]


async def update_customer(ctx: Context, body: CustomerUpdate) -> dict[str, Any]:
    require_admin(ctx.caller, "change customers")
    s = ctx.session
    c: EndCustomer = await require_row(s, EndCustomer, body.user_id, "customer", "user_id")
    await _apply(ctx, c, body)
    stamp(c, ctx.now, ctx.caller.name)
    await s.flush()
    if "budget_limits" in body.model_fields_set:
        await replace_windows(s, _SCOPE, c.user_id, body.budget_limits, now=ctx.now, by=ctx.caller.name)
    return (await customers_out(s, [c]))[0]


async def customer_info(ctx: Context, query: CustomerInfoQuery) -> dict[str, Any]:
    require_reader(ctx.caller, "read customers")
    c: EndCustomer = await require_row(ctx.session, EndCustomer, query.end_user_id, "customer", "end_user_id")
    return (await customers_out(ctx.session, [c]))[0]


async def list_customers(ctx: Context, query: Empty) -> list[dict[str, Any]]:
    require_reader(ctx.caller, "list customers")
    rows = list(
        await ctx.session.scalars(select(EndCustomer).order_by(EndCustomer.created_at, EndCustomer.user_id))
    )
    return await customers_out(ctx.session, rows)


async def _all_or_404(ctx: Context, ids: list[str]) -> list[EndCustomer]:
    return [await require_row(ctx.session, EndCustomer, i, "customer", "user_ids") for i in ids]


async def delete_customers(ctx: Context, body: CustomerIds) -> dict[str, Any]:
    require_admin(ctx.caller, "delete customers")
    s = ctx.session
    await _all_or_404(ctx, body.user_ids)
    bound = await s.scalar(select(func.count()).where(VirtualKey.end_user_id.in_(body.user_ids)))
    if bound:
        raise Conflict(
            f"{bound} keys are bound to these customers: delete or rebind them first", param="user_ids"
        )
    await delete_windows(s, _SCOPE, body.user_ids)
    await s.execute(delete(EndCustomer).where(EndCustomer.user_id.in_(body.user_ids)))
    return {"deleted_customers": body.user_ids}


async def _set_blocked(ctx: Context, body: CustomerIds, blocked: bool) -> dict[str, Any]:
    require_admin(ctx.caller, "block or unblock customers")
    rows = await _all_or_404(ctx, body.user_ids)
    for c in rows:
        c.blocked = blocked
        stamp(c, ctx.now, ctx.caller.name)
    await ctx.session.flush()
    return {"blocked_users" if blocked else "unblocked_users": body.user_ids}


async def block_customers(ctx: Context, body: CustomerIds) -> dict[str, Any]:
    return await _set_blocked(ctx, body, True)


async def unblock_customers(ctx: Context, body: CustomerIds) -> dict[str, Any]:
    return await _set_blocked(ctx, body, False)

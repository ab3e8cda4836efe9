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

from spendgate.admin._http import Context
from spendgate.admin.roles import require_admin, require_reader
from spendgate.admin.schemas import (
    CustomerIds,
    CustomerInfoQuery,
    CustomerListQuery,
    CustomerNew,
    CustomerUpdate,
)
from spendgate.admin.views import customers_out, page_of
from spendgate.entities import deletion
from spendgate.entities.service import CUSTOMERS
from spendgate.stores.database.models import EndCustomer

__all__ = [
    "block_customers",
    "customer_info",
    "delete_customers",
    "list_customers",
    "new_customer",
    "unblock_customers",
    "update_customer",
]

_FIELDS = (
    "alias",
    "team_id",
    "organization_id",
    "budget_id",
    "allowed_model_region",
    "default_model",
    "models",
)


async def _apply(ctx: Context, c: EndCustomer, body: CustomerNew | CustomerUpdate) -> None:
    await ctx.entities.check_customer(c, body)
    ctx.entities.apply_fields(c, body, _FIELDS)


async def new_customer(ctx: Context, body: CustomerNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create customers")

    async def fill(c: EndCustomer) -> None:
        await _apply(ctx, c, body)

    c = await ctx.entities.create(CUSTOMERS, body.user_id, fill, windows=body.budget_limits)
    return (await customers_out(ctx.repo, [c]))[0]


async def update_customer(ctx: Context, body: CustomerUpdate) -> dict[str, Any]:
    require_admin(ctx.caller, "change customers")
    c: EndCustomer = await ctx.entities.require(CUSTOMERS, body.user_id, "user_id")
    await _apply(ctx, c, body)
    await ctx.entities.save(CUSTOMERS, c, body)
    return (await customers_out(ctx.repo, [c]))[0]


async def customer_info(ctx: Context, query: CustomerInfoQuery) -> dict[str, Any]:
    require_reader(ctx.caller, "read customers")
    c: EndCustomer = await ctx.entities.require(CUSTOMERS, query.end_user_id, "end_user_id")
    return (await customers_out(ctx.repo, [c], spend=ctx.spend_at))[0]


async def list_customers(ctx: Context, query: CustomerListQuery) -> list[dict[str, Any]]:
    require_reader(ctx.caller, "list customers")
    rows = page_of(await ctx.entities.list_all(CUSTOMERS, search=query.search), query.page, query.page_size)
    spend = ctx.spend_at if query.with_spend else None
    return await customers_out(ctx.repo, rows, spend=spend)


async def delete_customers(ctx: Context, body: CustomerIds) -> dict[str, Any]:
    require_admin(ctx.caller, "delete customers")
    await deletion.delete_customers(ctx.entities, body.user_ids, "user_ids")
    return {"deleted_customers": body.user_ids}


async def _set_blocked(ctx: Context, body: CustomerIds, blocked: bool) -> dict[str, Any]:
    require_admin(ctx.caller, "block or unblock customers")
    for c in await ctx.entities.require_all(CUSTOMERS, body.user_ids, "user_ids"):
        c.blocked = blocked
        ctx.entities.stamp(c)
    await ctx.repo.flush()
    return {"blocked_users" if blocked else "unblocked_users": body.user_ids}


async def block_customers(ctx: Context, body: CustomerIds) -> dict[str, Any]:
    return await _set_blocked(ctx, body, True)


async def unblock_customers(ctx: Context, body: CustomerIds) -> dict[str, Any]:
    return await _set_blocked(ctx, body, False)

"""/budget/*: reusable budget profiles (LiteLLM_BudgetTable) that keys, teams,
organizations and customers point at through ``budget_id``.

proxy_admin manages them; proxy_admin_viewer reads them. A budget still in use cannot be
deleted (409).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.admin._http import Context
from spendgate.admin.convert import apply_limits, budget_row, require_row, stamp
from spendgate.admin.roles import require_admin, require_reader
from spendgate.admin.schemas import BudgetDelete, BudgetIds, BudgetNew, BudgetUpdate, Empty
from spendgate.http.errors import Conflict
from spendgate.stores.database.models import (
    Budget,
    EndCustomer,
    Organization,
    OrganizationMembership,
    Tag,
    Team,
    TeamMembership,
    VirtualKey,
)

__all__ = ["budget_info", "delete_budget", "list_budgets", "new_budget", "update_budget"]

_REFERRERS: tuple[tuple[Any, str], ...] = (
    (VirtualKey, "keys"),
    (Team, "teams"),
    (Organization, "organizations"),
    (EndCustomer, "customers"),
    (TeamMembership, "team memberships"),
    (OrganizationMembership, "organization memberships"),
    (Tag, "tags"),
)


def _out(budget: Budget) -> dict[str, Any]:
    out = budget_row(budget)
    assert out is not None
    return out


async def new_budget(ctx: Context, body: BudgetNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create budgets")
    s = ctx.session
    budget_id = body.budget_id or str(uuid.uuid4())
    if await s.get(Budget, budget_id) is not None:
        raise Conflict(f"budget {budget_id!r} already exists", param="budget_id")
    budget = Budget(budget_id=budget_id)
    apply_limits(budget, body)
    stamp(budget, ctx.now, ctx.caller.name, created=True)
    s.add(budget)
    await s.flush()
    return _out(budget)


async def update_budget(ctx: Context, body: BudgetUpdate) -> dict[str, Any]:
    require_admin(ctx.caller, "change budgets")
    budget: Budget = await require_row(ctx.session, Budget, body.budget_id, "budget", "budget_id")
    apply_limits(budget, body)
    stamp(budget, ctx.now, ctx.caller.name)
    await ctx.session.flush()
    return _out(budget)


async def budget_info(ctx: Context, body: BudgetIds) -> list[dict[str, Any]]:
    require_reader(ctx.caller, "read budgets")
    return [_out(await require_row(ctx.session, Budget, i, "budget", "budgets")) for i in body.budgets]


async def list_budgets(ctx: Context, query: Empty) -> list[dict[str, Any]]:
    require_reader(ctx.caller, "list budgets")
    rows = await ctx.session.scalars(select(Budget).order_by(Budget.created_at, Budget.budget_id))
    return [_out(b) for b in rows]


async def _in_use(session: AsyncSession, budget_id: str) -> str | None:
    for model, what in _REFERRERS:
        count = await session.scalar(select(func.count()).where(model.budget_id == budget_id))
        if count:
            return f"{count} {what}"
    return None


async def delete_budget(ctx: Context, body: BudgetDelete) -> dict[str, Any]:
    require_admin(ctx.caller, "delete budgets")
    budget: Budget = await require_row(ctx.session, Budget, body.id, "budget", "id")
    used = await _in_use(ctx.session, body.id)
    if used:
        raise Conflict(f"budget {body.id!r} is still used by {used}", param="id")
    await ctx.session.delete(budget)
    return {"deleted_budget": body.id}

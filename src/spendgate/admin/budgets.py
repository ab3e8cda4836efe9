"""/budget/*: reusable budget profiles (LiteLLM_BudgetTable) that keys, teams,
organizations and customers point at through ``budget_id``.

proxy_admin manages them; proxy_admin_viewer reads them. A budget still in use cannot be
deleted (409). ``/budget/info`` and ``/budget/list`` show each profile's ``used_by`` and
their spend (:mod:`spendgate.admin.budget_spend`).
"""

from __future__ import annotations

import uuid
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.budget_spend import budgets_out
from spendgate.admin.roles import require_admin, require_reader
from spendgate.admin.schemas import BudgetDelete, BudgetIds, BudgetInfoQuery, BudgetNew, BudgetUpdate, Empty
from spendgate.admin.views import budget_row
from spendgate.entities import deletion
from spendgate.entities.codec import apply_limits
from spendgate.entities.service import BUDGETS
from spendgate.stores.database.models import Budget

__all__ = ["budget_info", "budget_info_query", "delete_budget", "list_budgets", "new_budget", "update_budget"]


def _out(budget: Budget) -> dict[str, Any]:
    out = budget_row(budget)
    assert out is not None
    return out


async def new_budget(ctx: Context, body: BudgetNew) -> dict[str, Any]:
    require_admin(ctx.caller, "create budgets")

    async def fill(budget: Budget) -> None:
        apply_limits(budget, body, now=ctx.now)

    budget = await ctx.entities.create(BUDGETS, body.budget_id or str(uuid.uuid4()), fill)
    return _out(budget)


async def update_budget(ctx: Context, body: BudgetUpdate) -> dict[str, Any]:
    require_admin(ctx.caller, "change budgets")
    budget: Budget = await ctx.entities.require(BUDGETS, body.budget_id, "budget_id")
    apply_limits(budget, body, now=ctx.now)
    await ctx.entities.save(BUDGETS, budget)
    return _out(budget)


async def budget_info(ctx: Context, body: BudgetIds) -> list[dict[str, Any]]:
    require_reader(ctx.caller, "read budgets")
    found = await ctx.entities.require_all(BUDGETS, body.budgets, "budgets")
    return await budgets_out(ctx.repo, found, ctx.spend_at)


async def budget_info_query(ctx: Context, query: BudgetInfoQuery) -> list[dict[str, Any]]:
    """``GET /budget/info?budget_id=``: the POST form's answer for one profile."""
    return await budget_info(ctx, BudgetIds(budgets=[query.budget_id]))


async def list_budgets(ctx: Context, query: Empty) -> list[dict[str, Any]]:
    require_reader(ctx.caller, "list budgets")
    found = await ctx.entities.list_all(BUDGETS)
    return await budgets_out(ctx.repo, found, ctx.spend_at)


async def delete_budget(ctx: Context, body: BudgetDelete) -> dict[str, Any]:
    require_admin(ctx.caller, "delete budgets")
    await deletion.delete_budget(ctx.entities, body.id, "id")
    return {"deleted_budget": body.id}

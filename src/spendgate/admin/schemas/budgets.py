"""Request models of /budget/* (profiles, and /budget/explain)."""

from __future__ import annotations

from pydantic import Field

from spendgate.admin.schemas.fields import (
    BudgetFields,
    Ids,
    Names,
    Ref,
    StrictModel,
)

__all__ = [
    "BudgetDelete",
    "BudgetExplain",
    "BudgetIds",
    "BudgetInfoQuery",
    "BudgetNew",
    "BudgetTightestQuery",
    "BudgetUpdate",
]


class BudgetNew(BudgetFields):
    budget_id: str | None = Field(default=None, min_length=1, max_length=64)
    allowed_models: Names | None = None


class BudgetUpdate(BudgetFields):
    budget_id: Ref
    allowed_models: Names | None = None


class BudgetIds(StrictModel):
    budgets: Ids


class BudgetInfoQuery(StrictModel):
    budget_id: Ref


class BudgetDelete(StrictModel):
    id: Ref


class BudgetExplain(StrictModel):
    key: Ref = Field(description="The raw key or its hash (token).")
    customer: Ref | None = None
    model: Ref | None = None


class BudgetTightestQuery(StrictModel):
    limit: int = Field(default=10, ge=1, le=100, description="How many keys to return.")

"""Request models of /customer/* (alias /end_user/*)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from spendgate.admin.schemas.fields import (
    Ids,
    LimitFields,
    ListPage,
    Metadata,
    Names,
    Ref,
    Search,
    StrictModel,
    Text,
)

__all__ = [
    "CustomerIds",
    "CustomerInfoQuery",
    "CustomerListQuery",
    "CustomerNew",
    "CustomerUpdate",
]


class _CustomerFields(LimitFields):
    # budget_id or max_budget, not both (the handler's 422)
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["budget_id", "max_budget"],
                "properties": {"budget_id": {"type": "string"}, "max_budget": {"not": {"type": "null"}}},
            }
        }
    )
    alias: Text | None = None
    team_id: str | None = Field(
        default=None,
        max_length=255,
        description="The team the customer belongs to: only its keys may name the customer.",
    )
    organization_id: str | None = Field(
        default=None,
        max_length=255,
        description="The organization the customer belongs to: only its keys may name the customer.",
    )
    blocked: bool | None = None
    budget_id: Ref | None = None
    allowed_model_region: Literal["eu", "us"] | None = None
    default_model: Text | None = None
    models: Names | None = None
    metadata: Metadata | None = None


class CustomerNew(_CustomerFields):
    user_id: str = Field(min_length=1, max_length=255)


class CustomerUpdate(_CustomerFields):
    user_id: Ref


class CustomerInfoQuery(StrictModel):
    end_user_id: Ref


class CustomerListQuery(ListPage):
    search: Search | None = None


class CustomerIds(StrictModel):
    user_ids: Ids

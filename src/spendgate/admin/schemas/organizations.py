"""Request models of /organization/*."""

from __future__ import annotations

from pydantic import Field

from spendgate.admin.schemas.fields import (
    Ids,
    LimitFields,
    ListPage,
    Metadata,
    Names,
    Ref,
    StrictModel,
    Text,
)

__all__ = [
    "OrganizationIds",
    "OrganizationInfoQuery",
    "OrganizationListQuery",
    "OrganizationNew",
    "OrganizationUpdate",
]


class _OrganizationFields(LimitFields):
    models: Names | None = None
    budget_id: Ref | None = None
    metadata: Metadata | None = None
    blocked: bool | None = None


class OrganizationNew(_OrganizationFields):
    organization_alias: str = Field(min_length=1, max_length=255)
    organization_id: str | None = Field(default=None, min_length=1, max_length=255)


class OrganizationUpdate(_OrganizationFields):
    organization_id: Ref
    organization_alias: str | None = Field(default=None, min_length=1, max_length=255)


class OrganizationInfoQuery(StrictModel):
    organization_id: Ref


class OrganizationListQuery(ListPage):
    org_alias: Text | None = None


class OrganizationIds(StrictModel):
    organization_ids: Ids

"""Request models of /team/* (teams and their members)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from spendgate.admin.schemas.fields import (
    MAX_ITEMS,
    USD,
    BudgetDuration,
    Count,
    Ids,
    LimitFields,
    ListPage,
    Metadata,
    Names,
    Ref,
    Search,
    StrictModel,
    Text,
    either_of,
)

__all__ = [
    "Member",
    "TeamBlock",
    "TeamIds",
    "TeamInfoQuery",
    "TeamListQuery",
    "TeamMemberAdd",
    "TeamMemberDelete",
    "TeamMemberUpdate",
    "TeamNew",
    "TeamUpdate",
]


class Member(StrictModel):
    model_config = ConfigDict(json_schema_extra=either_of("user_id", "user_email"))
    role: Literal["admin", "user"] = "user"
    user_id: Ref | None = None
    user_email: Text | None = None

    @model_validator(mode="after")
    def _identified(self) -> Member:
        if self.user_id is None and self.user_email is None:
            raise ValueError("a member needs user_id or user_email")
        return self


class _TeamFields(LimitFields):
    team_alias: Text | None = None
    organization_id: Ref | None = None
    metadata: Metadata | None = None
    models: Names | None = None
    blocked: bool | None = None
    tags: Names | None = None
    budget_id: Ref | None = None


class TeamNew(_TeamFields):
    team_id: str | None = Field(default=None, min_length=1, max_length=255)
    members_with_roles: Annotated[list[Member], Field(max_length=MAX_ITEMS)] | None = None


class TeamUpdate(_TeamFields):
    team_id: Ref


class TeamInfoQuery(StrictModel):
    team_id: Ref


class TeamListQuery(ListPage):
    user_id: Ref | None = None
    organization_id: Ref | None = None
    search: Search | None = None


class TeamBlock(StrictModel):
    """LiteLLM's ``BlockTeamRequest`` (``/team/block`` and ``/team/unblock``)."""

    team_id: Ref


class TeamIds(StrictModel):
    team_ids: Ids


class TeamMemberAdd(StrictModel):
    team_id: Ref
    member: (
        Member
        | Annotated[
            list[Member], Field(max_length=MAX_ITEMS, json_schema_extra={"minItems": 1})  # the handler's 422
        ]
    )
    max_budget_in_team: USD | None = None
    budget_duration: BudgetDuration | None = None
    allowed_models: Names | None = None


class TeamMemberUpdate(StrictModel):
    model_config = ConfigDict(json_schema_extra=either_of("user_id", "user_email"))
    team_id: Ref
    user_id: Ref | None = None
    user_email: Text | None = None
    role: Literal["admin", "user"] | None = None
    max_budget_in_team: USD | None = None
    budget_duration: BudgetDuration | None = None
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None
    allowed_models: Names | None = None

    @model_validator(mode="after")
    def _identified(self) -> TeamMemberUpdate:
        if self.user_id is None and self.user_email is None:
            raise ValueError("give user_id or user_email")
        return self


class TeamMemberDelete(StrictModel):
    model_config = ConfigDict(json_schema_extra=either_of("user_id", "user_email"))
    team_id: Ref
    user_id: Ref | None = None
    user_email: Text | None = None

    @model_validator(mode="after")
    def _identified(self) -> TeamMemberDelete:
        if self.user_id is None and self.user_email is None:
            raise ValueError("give user_id or user_email")
        return self

"""Request models of /user/*."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from spendgate.admin.schemas.fields import (
    MAX_ITEMS,
    MAX_TEXT,
    USD,
    ExpiryDuration,
    Ids,
    LimitFields,
    Metadata,
    Names,
    Ref,
    Search,
    StrictModel,
    Text,
    either_of,
)

__all__ = [
    "TeamRef",
    "UserIds",
    "UserInfoQuery",
    "UserListQuery",
    "UserNew",
    "UserRole",
    "UserUpdate",
]


UserRole = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]


class TeamRef(StrictModel):
    team_id: Ref
    max_budget_in_team: USD | None = None
    user_role: Literal["admin", "user"] = "user"


class _UserFields(LimitFields):
    user_email: Text | None = None
    user_alias: Text | None = None
    user_role: UserRole | None = None
    models: Names | None = None
    metadata: Metadata | None = None
    organization_id: Ref | None = None
    blocked: bool | None = None


class UserNew(_UserFields):
    user_id: str | None = Field(default=None, min_length=1, max_length=255)
    teams: Annotated[list[Ref | TeamRef], Field(max_length=MAX_ITEMS)] | None = None
    auto_create_key: bool = True
    key_alias: Ref | None = None
    duration: ExpiryDuration | None = None


class UserUpdate(_UserFields):
    model_config = ConfigDict(json_schema_extra=either_of("user_id", "user_email"))
    user_id: Ref | None = None

    @model_validator(mode="after")
    def _identified(self) -> UserUpdate:
        if self.user_id is None and self.user_email is None:
            raise ValueError("give user_id or user_email")
        return self


class UserInfoQuery(StrictModel):
    user_id: Ref | None = None


class UserListQuery(StrictModel):
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=25, ge=1, le=1000)
    role: UserRole | None = None
    user_ids: str | None = Field(
        default=None, max_length=MAX_ITEMS * (MAX_TEXT + 1), description="Comma-separated user ids."
    )
    organization_id: Ref | None = None
    search: Search | None = None
    with_spend: bool = Field(
        default=False, description="Each user with its spend fields, as /user/info shows them."
    )


class UserIds(StrictModel):
    user_ids: Ids

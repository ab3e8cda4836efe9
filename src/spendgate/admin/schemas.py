"""Request models of the management API, with LiteLLM's field names.

Every model forbids unknown fields (a typo is a 422 that names it). USD amounts arrive as
JSON numbers (or numeric strings) and are read as ``Decimal(str(x))``: never float
arithmetic. ``null`` means unlimited and ``0`` means nothing is allowed. Durations are
checked with :func:`spendgate.core.periods.parse_duration`.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from spendgate.core.periods import HINT, parse_duration

__all__ = [
    "USD",
    "BudgetDelete",
    "BudgetExplain",
    "BudgetFields",
    "BudgetIds",
    "BudgetInfoQuery",
    "BudgetLimit",
    "BudgetNew",
    "BudgetUpdate",
    "CustomerIds",
    "CustomerInfoQuery",
    "CustomerNew",
    "CustomerUpdate",
    "Empty",
    "KeyDelete",
    "KeyGenerate",
    "KeyInfoQuery",
    "KeyListQuery",
    "KeyRef",
    "KeyRegenerate",
    "KeyUpdate",
    "LimitFields",
    "Member",
    "ModelBudget",
    "OrganizationIds",
    "OrganizationInfoQuery",
    "OrganizationListQuery",
    "OrganizationNew",
    "OrganizationUpdate",
    "TeamIds",
    "TeamInfoQuery",
    "TeamListQuery",
    "TeamMemberAdd",
    "TeamMemberDelete",
    "TeamMemberUpdate",
    "TeamNew",
    "TeamUpdate",
    "UserIds",
    "UserInfoQuery",
    "UserListQuery",
    "UserNew",
    "UserUpdate",
    "parse_expiry_duration",
]

MAX_USD = Decimal(1_000_000_000)
"""Amounts above $1e9 are refused: nano-USD must fit a BIGINT with room to add."""


def _usd(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be a number of USD")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"must be a number of USD, got {value!r}") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number of USD")
    return amount


USD = Annotated[
    Decimal,
    BeforeValidator(_usd),
    Field(ge=0, le=MAX_USD),
    WithJsonSchema({"type": "number", "minimum": 0, "description": "USD; null = unlimited, 0 = nothing"}),
]
"""A non-negative USD amount, read exactly."""

Count = Annotated[int, Field(ge=0, le=2**62)]


def _budget_duration(value: str) -> str:
    if len(value.strip()) > 32:
        raise ValueError(f"Invalid budget_duration: longer than 32 characters. {HINT}")
    parse_duration(value)
    return value.strip()


BudgetDuration = Annotated[
    str,
    AfterValidator(_budget_duration),
    WithJsonSchema({"type": "string", "examples": ["1h", "24h", "7d", "30d", "1mo"]}),
]

_EXPIRY_RE = re.compile(r"^\s*(\d+)\s*(mo|s|m|h|d|w)\s*$")
_EXPIRY_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}


def parse_expiry_duration(text: str) -> int:
    """A key's ``duration`` ("30d", "12h", "1mo" = 30 days) in seconds."""
    match = _EXPIRY_RE.match(text.lower())
    if match is None or int(match[1]) <= 0:
        raise ValueError(f"Invalid duration {text!r}. {HINT}")
    return int(match[1]) * _EXPIRY_SECONDS[match[2]]


def _expiry(value: str) -> str:
    parse_expiry_duration(value)
    return value.strip()


ExpiryDuration = Annotated[
    str, AfterValidator(_expiry), WithJsonSchema({"type": "string", "examples": ["30d"]})
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetLimit(_Strict):
    """One extra budget window (LiteLLM ``budget_limits`` entry)."""

    budget_duration: BudgetDuration
    max_budget: USD | None
    reset_at: Any = Field(default=None, description="Accepted and ignored: periods come from the clock.")


class ModelBudget(_Strict):
    """A per-model budget (LiteLLM ``BudgetConfig``; ``budget_limit``/``time_period`` are aliases)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    max_budget: USD | None = Field(default=None, validation_alias=AliasChoices("max_budget", "budget_limit"))
    budget_duration: BudgetDuration | None = Field(
        default=None, validation_alias=AliasChoices("budget_duration", "time_period")
    )
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None


class BudgetFields(_Strict):
    """The fields of a budget profile (LiteLLM_BudgetTable)."""

    max_budget: USD | None = None
    soft_budget: USD | None = None
    budget_duration: BudgetDuration | None = None
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None
    tpd_limit: Count | None = None
    max_parallel_requests: Count | None = None
    model_max_budget: dict[str, ModelBudget] | None = None


class LimitFields(BudgetFields):
    """Budget and rate-limit fields shared by keys, users, teams, organizations, customers."""

    budget_limits: list[BudgetLimit] | None = None
    model_rpm_limit: dict[str, Count] | None = None
    model_tpm_limit: dict[str, Count] | None = None

    @field_validator("budget_limits")
    @classmethod
    def _distinct_windows(cls, value: list[BudgetLimit] | None) -> list[BudgetLimit] | None:
        if value is not None:
            seen: set[str] = set()
            for item in value:
                if item.budget_duration in seen:
                    raise ValueError(f"budget_duration {item.budget_duration!r} appears twice")
                seen.add(item.budget_duration)
        return value


class Empty(_Strict):
    pass


# ---------------------------------------------------------------- keys


class _KeyFields(LimitFields):
    key_alias: str | None = Field(default=None, min_length=1, max_length=255)
    duration: ExpiryDuration | None = None
    models: list[str] | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user_id: str | None = Field(
        default=None, description="Bind the key to this customer: its requests are billed to it."
    )
    budget_id: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    blocked: bool | None = None
    temp_budget_increase: USD | None = None
    temp_budget_expiry: datetime | None = None

    @model_validator(mode="after")
    def _temp_budget_together(self) -> _KeyFields:
        given = {"temp_budget_increase", "temp_budget_expiry"} & self.model_fields_set
        if len(given) == 1:
            missing = ({"temp_budget_increase", "temp_budget_expiry"} - given).pop()
            raise ValueError(f"temp_budget_increase and temp_budget_expiry must be set together ({missing})")
        return self


class KeyGenerate(_KeyFields):
    key: str | None = Field(default=None, min_length=8, max_length=255, description="A custom raw key.")


class KeyUpdate(_KeyFields):
    key: str | None = Field(default=None, description="The raw key or its hash (token).")


class KeyRegenerate(KeyUpdate):
    new_key: str | None = Field(default=None, min_length=8, max_length=255)


class KeyRef(_Strict):
    key: str = Field(min_length=1)


class KeyInfoQuery(_Strict):
    key: str | None = None


class KeyListQuery(_Strict):
    page: int = Field(default=1, ge=1, le=1_000_000)
    size: int = Field(default=10, ge=1, le=1000)
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    key_alias: str | None = None
    return_full_object: bool = False


class KeyDelete(_Strict):
    keys: list[str] | None = None
    key_aliases: list[str] | None = None

    @model_validator(mode="after")
    def _something(self) -> KeyDelete:
        if not self.keys and not self.key_aliases:
            raise ValueError("give keys or key_aliases")
        return self


# ---------------------------------------------------------------- users

UserRole = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]


class TeamRef(_Strict):
    team_id: str
    max_budget_in_team: USD | None = None
    user_role: Literal["admin", "user"] = "user"


class _UserFields(LimitFields):
    user_email: str | None = Field(default=None, max_length=255)
    user_alias: str | None = Field(default=None, max_length=255)
    user_role: UserRole | None = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    organization_id: str | None = None
    blocked: bool | None = None


class UserNew(_UserFields):
    user_id: str | None = Field(default=None, min_length=1, max_length=255)
    teams: list[str | TeamRef] | None = None
    auto_create_key: bool = True
    key_alias: str | None = None
    duration: ExpiryDuration | None = None


class UserUpdate(_UserFields):
    user_id: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> UserUpdate:
        if self.user_id is None and self.user_email is None:
            raise ValueError("give user_id or user_email")
        return self


class UserInfoQuery(_Strict):
    user_id: str | None = None


class UserListQuery(_Strict):
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=25, ge=1, le=1000)
    role: UserRole | None = None
    user_ids: str | None = Field(default=None, description="Comma-separated user ids.")
    organization_id: str | None = None


class UserIds(_Strict):
    user_ids: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- teams


class Member(_Strict):
    role: Literal["admin", "user"] = "user"
    user_id: str | None = None
    user_email: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _identified(self) -> Member:
        if self.user_id is None and self.user_email is None:
            raise ValueError("a member needs user_id or user_email")
        return self


class _TeamFields(LimitFields):
    team_alias: str | None = Field(default=None, max_length=255)
    organization_id: str | None = None
    metadata: dict[str, Any] | None = None
    models: list[str] | None = None
    blocked: bool | None = None
    tags: list[str] | None = None
    budget_id: str | None = None


class TeamNew(_TeamFields):
    team_id: str | None = Field(default=None, min_length=1, max_length=255)
    members_with_roles: list[Member] | None = None


class TeamUpdate(_TeamFields):
    team_id: str


class TeamInfoQuery(_Strict):
    team_id: str


class TeamListQuery(_Strict):
    user_id: str | None = None
    organization_id: str | None = None


class TeamIds(_Strict):
    team_ids: list[str] = Field(min_length=1)


class TeamMemberAdd(_Strict):
    team_id: str
    member: Member | list[Member]
    max_budget_in_team: USD | None = None
    budget_duration: BudgetDuration | None = None
    allowed_models: list[str] | None = None


class TeamMemberUpdate(_Strict):
    team_id: str
    user_id: str | None = None
    user_email: str | None = Field(default=None, max_length=255)
    role: Literal["admin", "user"] | None = None
    max_budget_in_team: USD | None = None
    budget_duration: BudgetDuration | None = None
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None
    allowed_models: list[str] | None = None

    @model_validator(mode="after")
    def _identified(self) -> TeamMemberUpdate:
        if self.user_id is None and self.user_email is None:
            raise ValueError("give user_id or user_email")
        return self


class TeamMemberDelete(_Strict):
    team_id: str
    user_id: str | None = None
    user_email: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _identified(self) -> TeamMemberDelete:
        if self.user_id is None and self.user_email is None:
            raise ValueError("give user_id or user_email")
        return self


# ---------------------------------------------------------------- organizations


class _OrganizationFields(LimitFields):
    models: list[str] | None = None
    budget_id: str | None = None
    metadata: dict[str, Any] | None = None
    blocked: bool | None = None


class OrganizationNew(_OrganizationFields):
    organization_alias: str = Field(min_length=1, max_length=255)
    organization_id: str | None = Field(default=None, min_length=1, max_length=255)


class OrganizationUpdate(_OrganizationFields):
    organization_id: str
    organization_alias: str | None = Field(default=None, min_length=1, max_length=255)


class OrganizationInfoQuery(_Strict):
    organization_id: str


class OrganizationListQuery(_Strict):
    org_alias: str | None = None


class OrganizationIds(_Strict):
    organization_ids: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- customers (end users)


class _CustomerFields(LimitFields):
    alias: str | None = Field(default=None, max_length=255)
    blocked: bool | None = None
    budget_id: str | None = None
    allowed_model_region: Literal["eu", "us"] | None = None
    default_model: str | None = Field(default=None, max_length=255)
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None


class CustomerNew(_CustomerFields):
    user_id: str = Field(min_length=1, max_length=255)


class CustomerUpdate(_CustomerFields):
    user_id: str


class CustomerInfoQuery(_Strict):
    end_user_id: str


class CustomerIds(_Strict):
    user_ids: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- budgets


class BudgetNew(BudgetFields):
    budget_id: str | None = Field(default=None, min_length=1, max_length=64)
    allowed_models: list[str] | None = None


class BudgetUpdate(BudgetFields):
    budget_id: str
    allowed_models: list[str] | None = None


class BudgetIds(_Strict):
    budgets: list[str] = Field(min_length=1)


class BudgetInfoQuery(_Strict):
    budget_id: str


class BudgetDelete(_Strict):
    id: str


class BudgetExplain(_Strict):
    key: str = Field(min_length=1, description="The raw key or its hash (token).")
    customer: str | None = None
    model: str | None = None

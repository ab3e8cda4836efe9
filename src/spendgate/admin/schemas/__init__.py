"""Request models of the management API, with LiteLLM's field names: one module per
entity (:mod:`.keys`, :mod:`.users`, :mod:`.teams`, :mod:`.organizations`,
:mod:`.customers`, :mod:`.budgets`) over a shared vocabulary (:mod:`.fields`).

These models both validate requests and generate the OpenAPI document
(:func:`spendgate.admin.app.openapi_document`), so every rule a request is held to is
stated once, here: limits (``MAX_*``), formats (``DURATION``, ``EXPIRY``, ``USD_TEXT``) and
either-or rules (each model's ``json_schema_extra``, beside the validator that enforces it).

Every model forbids unknown fields (a typo is a 422 that names it) and refuses a NUL
character in any string, at any depth (PostgreSQL text cannot hold one). Bodies are
validated strictly (``"5"`` is not an integer, ``1`` is not a boolean). USD amounts
arrive as JSON numbers (or decimal strings) and are read as ``Decimal``: never float
arithmetic; at most ``MAX_USD``, so their nano-USD fit a BIGINT. ``null`` means unlimited
and ``0`` means nothing is allowed. Durations are checked with
:func:`spendgate.core.periods.parse_duration`.
"""

from __future__ import annotations

from spendgate.admin.schemas.budgets import (
    BudgetDelete,
    BudgetExplain,
    BudgetIds,
    BudgetInfoQuery,
    BudgetNew,
    BudgetTightestQuery,
    BudgetUpdate,
)
from spendgate.admin.schemas.customers import (
    CustomerIds,
    CustomerInfoQuery,
    CustomerListQuery,
    CustomerNew,
    CustomerUpdate,
)
from spendgate.admin.schemas.fields import (
    DURATION,
    EXPIRY,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_JSON_NUMBER,
    MAX_PARALLEL,
    MAX_TEXT,
    MAX_USD,
    MAX_WINDOWS,
    NUL_FREE,
    USD,
    USD_TEXT,
    BudgetFields,
    BudgetLimitField,
    Empty,
    LimitFields,
    ModelBudget,
    parse_expiry_duration,
)
from spendgate.admin.schemas.keys import (
    CustomKey,
    KeyDelete,
    KeyGenerate,
    KeyInfoQuery,
    KeyListQuery,
    KeyRef,
    KeyRegenerate,
    KeyRegenerateByPath,
    KeyUpdate,
)
from spendgate.admin.schemas.organizations import (
    OrganizationIds,
    OrganizationInfoQuery,
    OrganizationListQuery,
    OrganizationNew,
    OrganizationUpdate,
)
from spendgate.admin.schemas.teams import (
    Member,
    TeamBlock,
    TeamIds,
    TeamInfoQuery,
    TeamListQuery,
    TeamMemberAdd,
    TeamMemberDelete,
    TeamMemberUpdate,
    TeamNew,
    TeamUpdate,
)
from spendgate.admin.schemas.users import (
    TeamRef,
    UserIds,
    UserInfoQuery,
    UserListQuery,
    UserNew,
    UserRole,
    UserUpdate,
)

__all__ = [
    "DURATION",
    "EXPIRY",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_JSON_NUMBER",
    "MAX_PARALLEL",
    "MAX_TEXT",
    "MAX_USD",
    "MAX_WINDOWS",
    "NUL_FREE",
    "USD",
    "USD_TEXT",
    "BudgetDelete",
    "BudgetExplain",
    "BudgetFields",
    "BudgetIds",
    "BudgetInfoQuery",
    "BudgetLimitField",
    "BudgetNew",
    "BudgetTightestQuery",
    "BudgetUpdate",
    "CustomKey",
    "CustomerIds",
    "CustomerInfoQuery",
    "CustomerListQuery",
    "CustomerNew",
    "CustomerUpdate",
    "Empty",
    "KeyDelete",
    "KeyGenerate",
    "KeyInfoQuery",
    "KeyListQuery",
    "KeyRef",
    "KeyRegenerate",
    "KeyRegenerateByPath",
    "KeyUpdate",
    "LimitFields",
    "Member",
    "ModelBudget",
    "OrganizationIds",
    "OrganizationInfoQuery",
    "OrganizationListQuery",
    "OrganizationNew",
    "OrganizationUpdate",
    "TeamBlock",
    "TeamIds",
    "TeamInfoQuery",
    "TeamListQuery",
    "TeamMemberAdd",
    "TeamMemberDelete",
    "TeamMemberUpdate",
    "TeamNew",
    "TeamRef",
    "TeamUpdate",
    "UserIds",
    "UserInfoQuery",
    "UserListQuery",
    "UserNew",
    "UserRole",
    "UserUpdate",
    "parse_expiry_duration",
]

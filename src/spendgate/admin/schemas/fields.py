"""The shared vocabulary of the management API's request models: limits (``MAX_*``),
formats (``DURATION``, ``EXPIRY``, ``USD_TEXT``), the field types built on them (``USD``,
``Ref``, ``Names`` …), the strict base model every request model derives from, and the
budget and rate-limit fields keys, users, teams, organizations and customers share.

See :mod:`spendgate.admin.schemas` for the rules every model follows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.config import JsonDict

from spendgate.core.money import limit_to_nano
from spendgate.core.periods import HINT, parse_duration

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
    "BudgetDuration",
    "BudgetFields",
    "BudgetLimitField",
    "Count",
    "Empty",
    "ExpiryDuration",
    "Ids",
    "LimitFields",
    "ListPage",
    "Metadata",
    "ModelBudget",
    "Names",
    "Parallel",
    "PerModel",
    "Ref",
    "Search",
    "StrictModel",
    "Text",
    "Timestamp",
    "either_of",
    "parse_expiry_duration",
]

MAX_USD = Decimal(1_000_000_000)
"""Amounts above $1e9 are refused: nano-USD must fit a BIGINT with room to add."""

MAX_COUNT = 2**62
"""Token and request limits: an int64 (BIGINT, Redis) with room to add."""

MAX_PARALLEL = 2**31 - 1
"""``max_parallel_requests`` is an INTEGER column."""

MAX_TEXT = 255
"""Ids, aliases, e-mails, model and tag names: the width of their VARCHAR columns."""

MAX_ITEMS = 100
"""Lists (models, tags, ids, members) and maps (per-model limits) hold at most this many."""

NUL_FREE = r"^[^\u0000]*$"
"""The JSON-schema pattern of every free-text string: PostgreSQL text cannot hold NUL."""

USD_TEXT = r"^[0-9]{1,10}(\.[0-9]{1,18})?$"
"""A USD amount given as a string ("12.5"); numbers are read exactly either way."""

DURATION = (
    r"^(?:[1-9][0-9]{0,5}[smhd]|[1-9][0-9]{0,3}(?:w|mo)"
    r"|hourly|daily|weekly|monthly|quarterly|yearly|annually)$"
)
"""``budget_duration``: LiteLLM's "30s", "1h", "24h", "7d", "30d", "1mo", or a calendar name.
Hours above 24 must also be whole days ("48h"), which the pattern cannot say (a 422)."""

EXPIRY = r"^(?:[1-9][0-9]{0,5}[smh]|[1-9][0-9]{0,4}[dw]|[1-9][0-9]{0,3}mo)$"
"""A key's ``duration`` ("30d", "12h", "1mo" = 30 days): at most about 800 years."""

_USD_TEXT_RE = re.compile(USD_TEXT)
_DURATION_RE = re.compile(DURATION)
_EXPIRY_RE = re.compile(r"^([0-9]+)(mo|[smhdw])$")
_EXPIRY_FORMAT = re.compile(EXPIRY)
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _usd(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be a number of USD")
    if isinstance(value, str) and _USD_TEXT_RE.match(value) is None:
        raise ValueError(f"must be a number of USD, got {value[:40]!r}")
    amount = Decimal(str(value))
    if not amount.is_finite():
        raise ValueError("must be a finite number of USD")
    if 0 < amount <= MAX_USD:  # (outside: refused by ge= / le=, before any rounding)
        limit_to_nano(amount)  # a positive amount kept as 0 would mean "nothing allowed"
    return amount


USD = Annotated[
    Decimal,
    BeforeValidator(_usd),
    Field(ge=0, le=MAX_USD),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": int(MAX_USD)},
                {"type": "string", "pattern": USD_TEXT},
            ],
            "description": "USD (at most 1e9; kept in nano-USD); null = unlimited, 0 = nothing",
        }
    ),
]
"""A non-negative USD amount, read exactly."""

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Parallel = Annotated[int, Field(ge=0, le=MAX_PARALLEL)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
"""A short free text (alias, e-mail, name)."""
Ref = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
"""An id, or a reference to one."""
Search = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT,
        description="A fragment of an id, alias or e-mail: substring, case-insensitive (spendgate's own).",
    ),
]
"""A list endpoint's ``search``."""
Names = Annotated[list[Ref], Field(max_length=MAX_ITEMS)]
"""A list of model names, tags or ids."""
Ids = Annotated[list[Ref], Field(min_length=1, max_length=MAX_ITEMS)]
"""The ids a delete, block or read acts on: at least one."""
PerModel = Annotated[dict[Ref, Count], Field(max_length=MAX_ITEMS)]
"""A limit per model name."""
MAX_WINDOWS = 32
"""``budget_limits`` holds at most this many windows (each a distinct ``budget_duration``)."""


def either_of(*names: str, kind: JsonDict | None = None) -> JsonDict:
    """JSON schema of "at least one of ``names`` is given (and not null)"."""
    branch = kind or {"type": "string"}
    return {"anyOf": [{"required": [name], "properties": {name: branch}} for name in names]}


def _budget_duration(value: str) -> str:
    if _DURATION_RE.match(value) is None:
        raise ValueError(f"Invalid budget_duration {value[:40]!r}. {HINT}")
    parse_duration(value)
    return value


BudgetDuration = Annotated[
    str,
    AfterValidator(_budget_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION, "examples": ["1h", "24h", "7d", "30d", "1mo"]}),
]


def parse_expiry_duration(text: str) -> int:
    """A key's ``duration`` ("30d", "12h", "1mo" = 30 days) in seconds."""
    match = _EXPIRY_RE.match(text)
    if match is None or _EXPIRY_FORMAT.match(text) is None:
        raise ValueError(f"Invalid duration {text[:40]!r}. {HINT}")
    return int(match[1]) * _EXPIRY_SECONDS[match[2]]


_EXPIRY_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}


def _expiry(value: str) -> str:
    parse_expiry_duration(value)
    return value


ExpiryDuration = Annotated[
    str, AfterValidator(_expiry), WithJsonSchema({"type": "string", "pattern": EXPIRY, "examples": ["30d"]})
]


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _RFC3339.match(value) is None:
        raise ValueError("must be an RFC 3339 date-time with a UTC offset, e.g. 2026-01-31T00:00:00Z")
    parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be a date-time between the years 1 and 9999 in UTC") from None
    return parsed


Timestamp = Annotated[
    datetime, BeforeValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})
]


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000) is not allowed"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "a lone surrogate (an unpaired \\ud800-\\udfff escape) is not text"
    return None


def _bad_text(value: Any, path: str) -> str | None:
    """Why the first bad string (value or key) in ``value`` cannot be stored, and where."""
    todo: list[tuple[Any, str]] = [(value, path)]
    while todo:
        item, where = todo.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return problem if where == path else f"{problem} (in {where})"
        elif isinstance(item, dict):
            for key, sub in item.items():
                problem = _text_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    return f"{problem} (in a key of {where})"
                todo.append((sub, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            todo.extend((sub, f"{where}.{i}") for i, sub in enumerate(item))
    return None


MAX_DEPTH = 32
"""``metadata`` nests at most this deep."""

MAX_JSON_NUMBER = 2**63
"""Numbers in ``metadata`` are below this in magnitude (an int64; JSON libraries agree on it)."""


def _alert_emails(table: Any) -> None:
    """LiteLLM's ``max_budget_alert_emails``: ``{"<percent>": ["email", …]}``."""
    if not isinstance(table, dict):
        raise ValueError('max_budget_alert_emails must be an object such as {"80": ["owner@example.com"]}')
    for name, emails in table.items():
        try:
            percent = Decimal(str(name))
        except ArithmeticError:
            percent = Decimal("NaN")
        if not (percent.is_finite() and 0 < percent <= 1000):
            raise ValueError(f"max_budget_alert_emails: {name!r} is not a percent in (0, 1000]")
        if not isinstance(emails, list) or not all(isinstance(e, str) and "@" in e for e in emails):
            raise ValueError(f"max_budget_alert_emails.{name}: expected a list of email addresses")


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    if "max_budget_alert_emails" in value:
        _alert_emails(value["max_budget_alert_emails"])
    todo: list[tuple[Any, str, int]] = [(value, "metadata", 1)]
    while todo:
        item, where, depth = todo.pop()
        if depth > MAX_DEPTH and isinstance(item, dict | list):
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels (at {where})")
        if isinstance(item, int | float | Decimal) and not isinstance(item, bool):
            number = Decimal(item)
            if not (number.is_finite() and abs(number) < MAX_JSON_NUMBER):
                raise ValueError(f"a number beyond ±2^63 (at {where})")
        elif isinstance(item, dict):
            todo.extend((sub, f"{where}.{key}", depth + 1) for key, sub in item.items())
        elif isinstance(item, list):
            todo.extend((sub, f"{where}.{i}", depth + 1) for i, sub in enumerate(item))
    return value


Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_storable),
    Field(description=f"Any JSON object: at most {MAX_DEPTH} levels deep, numbers within ±2^63."),
]


class StrictModel(BaseModel):
    """Unknown fields are refused, and so is a string PostgreSQL cannot store (a NUL, a lone
    surrogate) anywhere in a field, at any depth."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        problem = _bad_text(value, info.field_name or "")
        if problem is not None:
            raise ValueError(problem)
        return value


class BudgetLimitField(StrictModel):
    """One extra budget window (LiteLLM ``budget_limits`` entry)."""

    # ``BudgetLimit`` in the OpenAPI document, as before (enforcement has its own BudgetLimit).
    model_config = ConfigDict(title="BudgetLimit")
    budget_duration: BudgetDuration
    max_budget: USD | None
    reset_at: Any = Field(default=None, description="Accepted and ignored: periods come from the clock.")


class ModelBudget(StrictModel):
    """A per-model budget (LiteLLM ``BudgetConfig``; ``budget_limit``/``time_period`` are aliases)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    max_budget: USD | None = Field(default=None, validation_alias=AliasChoices("max_budget", "budget_limit"))
    budget_duration: BudgetDuration | None = Field(
        default=None, validation_alias=AliasChoices("budget_duration", "time_period")
    )
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None


class BudgetFields(StrictModel):
    """The fields of a budget profile (LiteLLM_BudgetTable)."""

    max_budget: USD | None = None
    soft_budget: USD | None = None
    budget_duration: BudgetDuration | None = None
    tpm_limit: Count | None = None
    rpm_limit: Count | None = None
    tpd_limit: Count | None = None
    max_parallel_requests: Parallel | None = None
    model_max_budget: Annotated[dict[Ref, ModelBudget], Field(max_length=MAX_ITEMS)] | None = None


class LimitFields(BudgetFields):
    """Budget and rate-limit fields shared by keys, users, teams, organizations, customers."""

    budget_limits: Annotated[list[BudgetLimitField], Field(max_length=MAX_WINDOWS)] | None = None
    model_rpm_limit: PerModel | None = None
    model_tpm_limit: PerModel | None = None

    @field_validator("budget_limits")
    @classmethod
    def _distinct_windows(cls, value: list[BudgetLimitField] | None) -> list[BudgetLimitField] | None:
        if value is not None:
            seen: set[str] = set()
            for item in value:
                if item.budget_duration in seen:
                    raise ValueError(f"budget_duration {item.budget_duration!r} appears twice")
                seen.add(item.budget_duration)
        return value


class Empty(StrictModel):
    pass


class ListPage(StrictModel):
    """A list endpoint's page and spend, for those that answer a plain list (LiteLLM's
    shape): without ``page``, every row, as before."""

    page: int | None = Field(default=None, ge=1, le=1_000_000, description="1-based; absent: every row.")
    page_size: int = Field(default=25, ge=1, le=1000)
    with_spend: bool = Field(
        default=False,
        description="Each row with its spend fields (spend, budget_windows …) as its info endpoint "
        "shows them, read for the rows answered at once.",
    )

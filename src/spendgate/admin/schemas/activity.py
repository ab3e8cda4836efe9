"""Query models of LiteLLM's daily activity endpoints (``/user|team|tag|customer/daily/activity``).

LiteLLM's parameters (``start_date``, ``end_date`` as ``YYYY-MM-DD``, ``model``, ``api_key``,
``page``, ``page_size`` and each endpoint's entity filter, comma-separated where LiteLLM takes
a list) plus spendgate's ``timezone``: the IANA zone the dates are local days in (UTC by
default). A date or zone that does not parse, or an ``end_date`` before ``start_date``, is a
422 that names the parameter. A range is at most :data:`MAX_DAYS` days, so one request cannot
ask for an unbounded number of periods.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema, field_validator

from spendgate.admin.schemas.fields import MAX_ITEMS, MAX_TEXT, Ref, StrictModel
from spendgate.core.periods import get_timezone

__all__ = [
    "DATE",
    "MAX_DAYS",
    "ActivityQuery",
    "CustomerActivityQuery",
    "TagActivityQuery",
    "TeamActivityQuery",
    "UserActivityQuery",
    "split_ids",
]

MAX_DAYS = 3660
"""The longest range one request may cover (about ten years of local days)."""

DATE = r"^(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"
"""``YYYY-MM-DD``, years 1970 to 2999 (the ledger's buckets count from the UNIX epoch)."""

ZONE = r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$"
"""The shape of an IANA zone name (``UTC``, ``Europe/Berlin``, ``Etc/GMT+5``)."""

_MAX_LIST_TEXT = MAX_ITEMS * (MAX_TEXT + 1)


def _date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD") from None
    return value


def _zone(value: str) -> str:
    get_timezone(value)  # ValueError: unknown IANA timezone '…'
    return value


def split_ids(text: str | None) -> list[str] | None:
    """A comma-separated list (LiteLLM's ``team_ids=a,b``) as ids, blanks dropped; None stays None."""
    if text is None:
        return None
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def _id_list(value: str) -> str:
    ids = split_ids(value) or []
    if not ids:
        raise ValueError("give at least one id")
    if len(ids) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} ids")
    if any(len(i) > MAX_TEXT for i in ids):
        raise ValueError(f"an id is longer than {MAX_TEXT} characters")
    return value


DateText = Annotated[
    str,
    AfterValidator(_date),
    WithJsonSchema({"type": "string", "pattern": DATE, "examples": ["2026-11-01"]}),
]
Zone = Annotated[
    str,
    AfterValidator(_zone),
    WithJsonSchema({"type": "string", "pattern": ZONE, "examples": ["UTC", "Europe/Berlin", "Asia/Kolkata"]}),
]
IdList = Annotated[
    str,
    Field(min_length=1, max_length=_MAX_LIST_TEXT),
    AfterValidator(_id_list),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": _MAX_LIST_TEXT,
            "pattern": r"[^ ,]",
            "description": f"comma-separated ids (at most {MAX_ITEMS})",
        }
    ),
]


class ActivityQuery(StrictModel):
    """What every daily activity endpoint takes."""

    start_date: DateText = Field(pattern=DATE)
    end_date: DateText = Field(pattern=DATE)
    timezone: Zone = Field(default="UTC", pattern=ZONE)
    model: Ref | None = None
    api_key: Ref | None = None
    """A key: the raw ``sk-…`` key, its hash (LiteLLM's ``api_key``) or its id."""
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=10, ge=1, le=1000)
    """Days per page."""

    @field_validator("end_date")
    @classmethod
    def _range(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("start_date")
        if start is None:
            return value  # start_date failed already; that error is the one to name
        days = (date.fromisoformat(value) - date.fromisoformat(start)).days
        if days < 0:
            raise ValueError(f"end_date {value} is before start_date {start}")
        if days >= MAX_DAYS:
            raise ValueError(f"the range covers more than {MAX_DAYS} days")
        return value

    @property
    def first_day(self) -> date:
        return date.fromisoformat(self.start_date)

    @property
    def last_day(self) -> date:
        return date.fromisoformat(self.end_date)


class UserActivityQuery(ActivityQuery):
    """``/user/daily/activity``: one user (an internal user: themselves by default)."""

    user_id: Ref | None = None


class TeamActivityQuery(ActivityQuery):
    """``/team/daily/activity``: ``team_ids`` (comma-separated; an internal user: the teams
    they admin by default) and ``exclude_team_ids``."""

    team_ids: IdList | None = None
    exclude_team_ids: IdList | None = None


class TagActivityQuery(ActivityQuery):
    """``/tag/daily/activity``: ``tags``, comma-separated (all tags when absent)."""

    tags: IdList | None = None


class CustomerActivityQuery(ActivityQuery):
    """``/customer/daily/activity``: ``end_user_ids``, comma-separated (all customers when absent)."""

    end_user_ids: IdList | None = None

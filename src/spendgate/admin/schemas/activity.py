"""Query models of LiteLLM's daily activity endpoints (``/user|team|tag|customer/daily/activity``).

LiteLLM's parameters (``start_date``, ``end_date`` as ``YYYY-MM-DD``, ``model``, ``api_key``,
``page``, ``page_size`` and each endpoint's entity filter, comma-separated where LiteLLM takes
a list) plus spendgate's ``timezone``: the IANA zone the dates are local days in (UTC by
default). The dates are required; they and the zone are validated as every spend read's
(:mod:`spendgate.admin.schemas.spend_range`: a 422 naming the parameter, a range of at most
:data:`~spendgate.admin.schemas.spend_range.MAX_DAYS` days, so one request cannot ask for an
unbounded number of periods).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from spendgate.admin.schemas.fields import MAX_ITEMS, MAX_TEXT, Ref
from spendgate.admin.schemas.spend_range import RequiredDateRangeQuery

__all__ = [
    "ActivityQuery",
    "CustomerActivityQuery",
    "TagActivityQuery",
    "TeamActivityQuery",
    "UserActivityQuery",
    "split_ids",
]

_MAX_LIST_TEXT = MAX_ITEMS * (MAX_TEXT + 1)


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


class ActivityQuery(RequiredDateRangeQuery):
    """What every daily activity endpoint takes."""

    model: Ref | None = None
    api_key: Ref | None = None
    """A key: the raw ``sk-…`` key, its hash (LiteLLM's ``api_key``) or its id."""
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=10, ge=1, le=1000)
    """Days per page."""


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

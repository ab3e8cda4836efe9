"""Query models of LiteLLM's spend endpoints (``/spend/*``, ``/global/spend*``).

LiteLLM's parameter names, plus an IANA ``timezone`` (default UTC) in which the
``YYYY-MM-DD`` dates are local days: a range is ``[start_date 00:00, end_date + 1 00:00)``
local. The dates and zone are :mod:`spendgate.admin.schemas.spend_range`'s (validated there:
a 422 naming the parameter).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from spendgate.admin.schemas.fields import Ref, StrictModel
from spendgate.admin.schemas.spend_range import DateRangeQuery, RequiredDateRangeQuery

__all__ = [
    "MAX_PAGE_SIZE",
    "GlobalSpendKeysQuery",
    "GlobalSpendLogsQuery",
    "GlobalSpendModelsQuery",
    "GlobalSpendReportQuery",
    "GlobalSpendTagsQuery",
    "SpendKeysQuery",
    "SpendLogsQuery",
    "SpendRangeQuery",
    "SpendUsersQuery",
]

MAX_PAGE_SIZE = 1000
"""The most rows one ``/spend/logs`` page holds."""
MAX_LIMIT = 10_000


class SpendRangeQuery(DateRangeQuery):
    """A range of local days. Without dates: the last 30 days and today (LiteLLM's views)."""


class SpendKeysQuery(StrictModel):
    """``/spend/keys`` takes no parameters."""


class SpendUsersQuery(StrictModel):
    user_id: Ref | None = None


class SpendLogsQuery(SpendRangeQuery):
    api_key: Ref | None = Field(default=None, description="The raw key, its hash or its id.")
    user_id: Ref | None = None
    request_id: Ref | None = None
    summarize: bool = Field(
        default=True,
        description="With start_date and end_date: true sums spend per day (LiteLLM's legacy "
        "shape); false lists the requests.",
    )
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE)
    cursor: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="spendgate: the next page after the one that answered with this "
        "x-spendgate-next-cursor header (newest first; stable while events are added). "
        "Not with page > 1.",
    )


class GlobalSpendKeysQuery(SpendRangeQuery):
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="The top n keys by spend.")


class GlobalSpendModelsQuery(SpendRangeQuery):
    limit: int = Field(default=10, ge=1, le=MAX_LIMIT, description="The top n models by spend.")


class GlobalSpendTagsQuery(SpendRangeQuery):
    tags: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None, description="Comma-separated tags to report ('all-tags' or none: every tag)."
    )


class GlobalSpendLogsQuery(SpendRangeQuery):
    api_key: Ref | None = Field(default=None, description="The raw key, its hash or its id.")


class GlobalSpendReportQuery(RequiredDateRangeQuery):
    """LiteLLM requires both dates here (a missing one is a 422 naming it)."""

    group_by: Literal["team", "customer", "api_key"] = "team"
    api_key: Ref | None = None
    internal_user_id: Ref | None = None
    team_id: Ref | None = None
    customer_id: Ref | None = None

"""The query of ``GET /global/spend/export``: format, local-day range in an IANA zone,
optional grouping, and the key / user / team filters the role rule checks.

Why its own module: each spend endpoint owns its request model (the shared
``schemas/__init__`` is not edited per endpoint). The dates and zone are every spend read's
(:mod:`spendgate.admin.schemas.spend_range`: a 422 naming the parameter); a per-event export
streams, so its range has no length limit here and takes any year of the calendar (a grouped
one is limited in :mod:`spendgate.admin.exports`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from spendgate.admin.schemas.fields import NUL_FREE, Ref
from spendgate.admin.schemas.spend_range import RequiredDateRangeQuery

__all__ = ["ExportQuery"]


class ExportQuery(RequiredDateRangeQuery):
    """``?format=csv|focus&start_date&end_date&timezone&group_by&granularity&api_key&user_id&team_id``."""

    MAX_DAYS: ClassVar[int | None] = None
    FIRST_YEAR: ClassVar[int] = 1  # per-event rows are read by time, not from the rollups
    LAST_YEAR: ClassVar[int] = 9999

    format: Literal["csv", "focus"] = "csv"
    group_by: Annotated[str, Field(max_length=200, pattern=NUL_FREE)] | None = Field(
        default=None,
        description="Comma-separated report dimensions (key, user, team, org, customer, tag, "
        "endpoint, mode, model, provider, deployment): CSV rows aggregated from the rollups. "
        "mode is batch or realtime.",
    )
    granularity: Literal["hour", "day", "week", "month"] = "day"
    top: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="With one group_by dimension: the top n values by cost over the range; each "
        "period's other values are summed into one row (empty value, other_groups > 0).",
    )
    api_key: Ref | None = None
    user_id: Ref | None = None
    team_id: Ref | None = None

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in (self.group_by or "").split(",") if d.strip())

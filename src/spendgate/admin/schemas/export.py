"""The query of ``GET /global/spend/export``: format, local-day range in an IANA zone,
optional grouping, and the key / user / team filters the role rule checks.

Why its own module: each spend endpoint owns its request model (the shared
``schemas/__init__`` is not edited per endpoint). A date or zone that does not parse is a
422 naming the parameter.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, field_validator

from spendgate.admin.schemas.fields import NUL_FREE, Ref, StrictModel
from spendgate.core.periods import get_timezone

__all__ = ["ExportQuery"]

DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

DateText = Annotated[str, Field(pattern=DATE, description="A local day, YYYY-MM-DD.")]


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD") from None


class ExportQuery(StrictModel):
    """``?format=csv|focus&start_date&end_date&timezone&group_by&granularity&api_key&user_id&team_id``."""

    format: Literal["csv", "focus"] = "csv"
    start_date: DateText
    end_date: DateText
    timezone: Annotated[str, Field(max_length=64, pattern=NUL_FREE)] = "UTC"
    group_by: Annotated[str, Field(max_length=200, pattern=NUL_FREE)] | None = Field(
        default=None,
        description="Comma-separated report dimensions (key, user, team, org, customer, tag, "
        "model, provider, deployment): CSV rows aggregated from the rollups.",
    )
    granularity: Literal["hour", "day", "week", "month"] = "day"
    api_key: Ref | None = None
    user_id: Ref | None = None
    team_id: Ref | None = None

    @field_validator("start_date", "end_date")
    @classmethod
    def _date(cls, value: str) -> str:
        _day(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            get_timezone(value)  # ValueError: unknown IANA timezone
        except OSError:  # "America" is a directory of the zone database, not a zone
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @property
    def start(self) -> date:
        return _day(self.start_date)

    @property
    def end(self) -> date:
        return _day(self.end_date)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in (self.group_by or "").split(",") if d.strip())

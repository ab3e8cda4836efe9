"""Request models of ``/alerting/*`` (admin only): the delivery log's filters and page, and
what ``POST /alerting/test`` sends."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from spendgate.admin.schemas.fields import NUL_FREE, StrictModel
from spendgate.alerts.model import KINDS

__all__ = ["AlertTest", "DeliveriesQuery"]

_Channel = Annotated[str, Field(min_length=1, max_length=64, pattern=NUL_FREE)]


class DeliveriesQuery(StrictModel):
    """``?status=sent|retry|dead&channel&kind&page&page_size``: newest attempts first."""

    status: Literal["sent", "retry", "dead"] | None = Field(
        default=None, description="The attempt's outcome: sent, retry (failed, tried again later) or dead."
    )
    channel: _Channel | None = Field(default=None, description="slack, webhook, email or slack:<type>:<n>.")
    kind: Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(KINDS)})] | None = None
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=50, ge=1, le=500)


class AlertTest(StrictModel):
    """A test alert to every configured channel, or to ``channel``."""

    channel: _Channel | None = None
    message: Annotated[str, Field(min_length=1, max_length=500, pattern=NUL_FREE)] = (
        "This is a test alert from spendgate."
    )

"""Overview: spend today, this week and this month, each with a straight-line forecast to
the end of its period, the budgets nearest their limit (a fragment loaded after the page:
:func:`tightest`), unpriced usage and recent alerts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext
from spendgate.ui.formatting import percent, usd_of_nanos
from spendgate.ui.pages.series import read_spend
from spendgate.ui.pages.windows import windows_of

__all__ = ["overview", "tightest"]


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    start: datetime
    end: datetime
    spend: Decimal
    forecast: Decimal
    saved: Decimal
    """What the response cache saved in the period (its hits are billed nothing)."""


def _periods(now: datetime) -> list[tuple[str, datetime, datetime]]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return [
        ("Today", day, day + timedelta(days=1)),
        ("This week", week, week + timedelta(days=7)),
        ("This month", month, next_month),
    ]


def _forecast(spend: Decimal, start: datetime, end: datetime, now: datetime) -> Decimal:
    """Spend so far extended at the same rate to the period's end (a straight line)."""
    elapsed = (now - start).total_seconds()
    if elapsed <= 0:
        return spend
    return (spend * Decimal((end - start).total_seconds()) / Decimal(elapsed)).quantize(Decimal("0.000001"))


async def overview(ctx: PageContext) -> Response:
    zone = ZoneInfo(ctx.timezone)
    now = datetime.now(zone)
    spans = _periods(now)
    first = min(start for _, start, _ in spans).date()
    # Admins group by provider (few rows); anyone else may only group by their keys.
    # The three reads are independent: asked at the same time, the page takes the longest.
    rows, (alerts, alerts_error) = await asyncio.gather(
        read_spend(
            ctx.api,
            group_by="provider" if ctx.session.is_admin else "key",
            granularity="day",
            start=first,
            end=now.date(),
            timezone=ctx.timezone,
        ),
        _alerts(ctx),
    )
    daily = rows.by_period()
    periods = []
    for name, start, end in spans:
        nanos = sum(v for day, v in daily.items() if start.date() <= _day(day) < end.date())
        saved = sum(v for day, v in rows.saved.items() if start.date() <= _day(day) < end.date())
        spend = usd_of_nanos(nanos)
        periods.append(
            Period(name, start, end, spend, _forecast(spend, start, end, now), usd_of_nanos(saved))
        )
    unpriced = rows.total("unpriced_requests")
    return ctx.render(
        "overview.html",
        periods=periods,
        unpriced=unpriced,
        since=first,
        alerts=alerts,
        alerts_error=alerts_error,
        percent=percent,
    )


def _day(period_start: str) -> date:
    return datetime.fromisoformat(period_start).date()


async def tightest(ctx: PageContext) -> Response:
    """The Overview's "Budgets nearest their limit", loaded after the page: the ten budget
    windows nearest their limit among every key the caller may read. ``/budget/tightest``
    ranks them all (every budgeted key's windows are read: ~0.5 s for 2,000 keys of three
    windows on a 10 M-event ledger, which the page itself does not wait for) and answers
    the ten keys whose fullest windows lead: their windows hold the ten fullest."""
    try:
        answer = await ctx.api.get("/budget/tightest", {"limit": 10})
    except ApiError as exc:
        return ctx.render("overview_tightest.html", windows=[], error=exc.message)
    found = [w for key in answer["keys"] for w in windows_of(key, "key") if w.limit is not None]
    found.sort(key=lambda w: (w.effective_limit == 0, w.used_percent or Decimal(0)), reverse=True)
    return ctx.render("overview_tightest.html", windows=found[:10], error=None)


async def _alerts(ctx: PageContext) -> tuple[list[dict[str, Any]], str | None]:
    if not ctx.session.is_admin:
        return [], "Alerts are shown to proxy admins."
    try:
        answer = await ctx.api.get("/alerting/deliveries", {"page_size": 5})
    except ApiError as exc:
        return [], exc.message
    return list(answer["deliveries"]), None

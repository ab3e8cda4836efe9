"""Spend: a stacked time series per group (day or hour, any range, any zone), the table of
groups under it, and links to the CSV and FOCUS exports of the same range."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from starlette.responses import Response, StreamingResponse

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext
from spendgate.ui.formatting import usd_of_nanos
from spendgate.ui.pages.series import GROUPS, OTHER, SpendRows, read_spend

__all__ = ["export", "spend"]

GRANULARITIES = ("hour", "day", "week", "month")
"""The export's periods: weeks start on Monday, months on the 1st, in the chosen zone."""
_SHOWN = 8  # groups drawn one by one; the rest are summed as "other"
_TOP = 50
"""Groups in the table (by cost over the range); the rest are one row, summed by the
export in SQL. The CSV download has every group."""
_NON_ADMIN_GROUPS = ("key", "user", "team")  # what the export lets a non-admin group by


def _dates(ctx: PageContext) -> tuple[date, date]:
    today = datetime.now(ZoneInfo(ctx.timezone)).date()
    try:
        end = date.fromisoformat(ctx.query("end_date") or today.isoformat())
        start = date.fromisoformat(ctx.query("start_date") or (end - timedelta(days=13)).isoformat())
    except ValueError:
        raise ApiError(422, "start_date and end_date are dates like 2026-12-31") from None
    return start, end


async def spend(ctx: PageContext) -> Response:
    try:
        ZoneInfo(ctx.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, f"timezone: {ctx.timezone!r} is not an IANA zone such as Europe/Berlin") from None
    allowed = [g for g in GROUPS if ctx.session.is_admin or g in _NON_ADMIN_GROUPS]
    group_by = ctx.query("group_by", allowed[0] if ctx.session.is_admin else "key")
    if group_by not in allowed:
        raise ApiError(422, f"group_by: choose one of {', '.join(allowed)}")
    granularity = ctx.query("granularity", "day")
    if granularity not in GRANULARITIES:
        raise ApiError(422, f"granularity: choose one of {', '.join(GRANULARITIES)}")
    start, end = _dates(ctx)
    if (end - start).days > (31 if granularity == "hour" else 3660):
        raise ApiError(422, "the range is too long for this granularity: hourly at most 31 days")
    rows = await read_spend(
        ctx.api,
        group_by=group_by,
        granularity=granularity,
        start=start,
        end=end,
        timezone=ctx.timezone,
        top=_TOP,
    )
    names = dict(rows.names)
    if rows.other_groups:
        names[OTHER] = f"{rows.other_groups:,} others"
    params = {"start_date": start.isoformat(), "end_date": end.isoformat(), "timezone": ctx.timezone}
    return ctx.render(
        "spend.html",
        groups={g: GROUPS[g] for g in allowed},
        group_by=group_by,
        granularity=granularity,
        start=start,
        end=end,
        table=_table(rows, names),
        total=usd_of_nanos(rows.total()),
        requests=rows.total("requests"),
        saved=usd_of_nanos(rows.total("saved_nanos")),
        cache_hits=rows.total("cache_hits"),
        chart=orjson.dumps(_chart(rows, _axis(start, end, granularity, ctx.timezone), names)).decode(),
        csv_url="/ui/spend/export?" + urlencode({"format": "csv", **params}),
        grouped_csv_url="/ui/spend/export?"
        + urlencode({"format": "csv", "group_by": group_by, "granularity": granularity, **params}),
        focus_url="/ui/spend/export?" + urlencode({"format": "focus", **params}),
    )


def _ranked(rows: SpendRows) -> list[str]:
    """The groups by cost, highest first; the others' row last."""
    return sorted(rows.totals, key=lambda g: (g == OTHER, -rows.totals[g]["cost_nanos"], g))


def _axis(start: date, end: date, granularity: str, timezone: str) -> list[int]:
    """Every period start of the range (epoch seconds), so the chart spans the whole range
    and a period without spend is drawn as zero. The first week or month starts before
    ``start`` when the range does (the export labels it so)."""
    zone = ZoneInfo(timezone)
    if granularity == "hour":
        moment = datetime.combine(start, datetime.min.time(), zone)
        stop = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone)
        out = []
        while moment < stop:
            out.append(int(moment.timestamp()))
            moment = (moment.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
        return out
    # Local days, weeks and months: step the calendar, so a DST day is one point.
    day = {"week": start - timedelta(days=start.weekday()), "month": start.replace(day=1)}.get(
        granularity, start
    )
    days = []
    while day <= end:
        days.append(day)
        if granularity == "month":
            day = (day + timedelta(days=32)).replace(day=1)
        else:
            day += timedelta(days=7 if granularity == "week" else 1)
    return [int(datetime.combine(d, datetime.min.time(), zone).timestamp()) for d in days]


def _table(rows: SpendRows, names: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "group": "" if g == OTHER else g,
            "name": names.get(g, g),
            "spend": usd_of_nanos(rows.totals[g]["cost_nanos"]),
            "requests": rows.totals[g]["requests"],
            "unpriced": rows.totals[g]["unpriced_requests"],
            "input_tokens": rows.totals[g]["input_tokens"],
            "output_tokens": rows.totals[g]["output_tokens"],
            "saved": usd_of_nanos(rows.totals[g]["saved_nanos"]),
        }
        for g in _ranked(rows)
    ]


def _chart(rows: SpendRows, x: list[int], labels: dict[str, str]) -> dict[str, Any]:
    """uPlot's columns: x (epoch seconds), then one stacked series per group (USD as
    strings: the browser draws them as numbers, the exact values stay readable)."""
    ranked = _ranked(rows)
    shown, rest = ranked[:_SHOWN], ranked[_SHOWN:]
    names = [*(labels.get(g, g) for g in shown), *(["other"] if rest else [])]
    at = {int(datetime.fromisoformat(p).timestamp()): p for p in rows.periods}
    series: list[list[Decimal]] = []
    for moment in x:
        period = at.get(moment, "")
        values = [Decimal(rows.nanos[g].get(period, 0)) for g in shown]
        if rest:
            values.append(Decimal(sum(rows.nanos[g].get(period, 0) for g in rest)))
        series.append(values)
    stacked: list[list[str]] = []
    for i in range(len(names)):  # cumulative, so each band sits on the ones below it
        stacked.append([str(usd_of_nanos(int(sum(row[: i + 1])))) for row in series])
    return {"x": x, "names": names, "stacked": stacked}


async def export(ctx: PageContext) -> Response:
    """The API's CSV / FOCUS export, streamed through (the browser holds no bearer key)."""
    params = {
        k: ctx.query(k) for k in ("format", "start_date", "end_date", "timezone", "group_by", "granularity")
    }
    upstream, body = await ctx.api.stream("/global/spend/export", params)
    headers = {k: v for k, v in upstream.headers.items() if k.lower() == "content-disposition"}
    return StreamingResponse(body, media_type=upstream.headers.get("content-type"), headers=headers)

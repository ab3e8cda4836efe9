"""Logs: spend events a page at a time, newest first, through /spend/logs' own pagination
(never a full scan), filtered by key, user, request id and date range."""

from __future__ import annotations

from starlette.responses import Response

from spendgate.ui.context import PageContext

__all__ = ["logs"]

_PAGE_SIZE = 50
_FILTERS = ("api_key", "user_id", "request_id", "start_date", "end_date")


async def logs(ctx: PageContext) -> Response:
    page = ctx.page_number()
    filters = {name: ctx.query(name) for name in _FILTERS}
    rows = await ctx.api.get(
        "/spend/logs",
        {"summarize": "false", "page": page, "page_size": _PAGE_SIZE, "timezone": ctx.timezone, **filters},
    )
    return ctx.render(
        "logs.html",
        rows=rows,
        page=page,
        has_next=len(rows) >= _PAGE_SIZE,
        filters=filters,
    )

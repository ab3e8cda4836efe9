"""Logs: spend events a page at a time, newest first, through /spend/logs' cursor (keyset
pagination: each page is read from the index where the last one stopped, never counted
off from the top), filtered by key, user, request id and date range."""

from __future__ import annotations

from starlette.responses import Response

from spendgate.ui.context import PageContext

__all__ = ["logs"]

_PAGE_SIZE = 50
_FILTERS = ("api_key", "user_id", "request_id", "start_date", "end_date")
_NEXT = "x-spendgate-next-cursor"


async def logs(ctx: PageContext) -> Response:
    filters = {name: ctx.query(name) for name in _FILTERS}
    cursor = ctx.query("cursor")
    rows, next_cursor = await ctx.api.get_page(
        "/spend/logs",
        {
            "summarize": "false",
            "page_size": _PAGE_SIZE,
            "timezone": ctx.timezone,
            "cursor": cursor,
            **filters,
        },
        _NEXT,
    )
    return ctx.render("logs.html", rows=rows, first=not cursor, next_cursor=next_cursor, filters=filters)

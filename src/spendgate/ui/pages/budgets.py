"""Budgets: the budget windows of the keys the caller may read, 25 keys a page, with
utilisation bars, soft-budget markers and reset times, and, for admins, the shared budget
profiles (on the first page)."""

from __future__ import annotations

from starlette.responses import Response

from spendgate.ui.context import PageContext
from spendgate.ui.pages.windows import windows_of

__all__ = ["budgets"]


_PAGE_SIZE = 25


async def budgets(ctx: PageContext) -> Response:
    page = ctx.page_number()
    keys = await ctx.visible_keys(page, _PAGE_SIZE)
    profiles = await ctx.api.get("/budget/list") if ctx.session.is_admin and page == 1 else []
    return ctx.render(
        "budgets.html",
        windows=[w for key in keys for w in windows_of(key, "key")],
        profiles=profiles,
        page=page,
        has_next=len(keys) >= _PAGE_SIZE,
    )

"""Budgets: every key window the caller may read (first 100 keys) with utilisation bars,
soft-budget markers and reset times, and, for admins, the shared budget profiles."""

from __future__ import annotations

from starlette.responses import Response

from spendgate.ui.context import PageContext
from spendgate.ui.pages.windows import windows_of

__all__ = ["budgets"]


async def budgets(ctx: PageContext) -> Response:
    keys = await ctx.visible_keys()
    profiles = await ctx.api.get("/budget/list") if ctx.session.is_admin else []
    return ctx.render(
        "budgets.html",
        windows=[w for key in keys for w in windows_of(key, "key")],
        profiles=profiles,
    )

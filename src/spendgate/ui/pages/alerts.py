"""Alerts: the delivery log of recent alerts (``GET /alerting/deliveries``, admins)."""

from __future__ import annotations

from starlette.responses import Response

from spendgate.ui.context import PageContext

__all__ = ["alerts"]


async def alerts(ctx: PageContext) -> Response:
    page = ctx.page_number()
    status = ctx.query("status")
    answer = await ctx.api.get("/alerting/deliveries", {"page": page, "page_size": 50, "status": status})
    return ctx.render("alerts.html", answer=answer, page=page, status=status)

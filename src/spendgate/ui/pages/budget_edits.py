"""``POST /ui/<section>/budgets``: a key's, team's, user's or customer's budget windows,
per-model budgets, (keys and teams) per-model rate limits and (keys) temporary increase,
sent to the API's ``/…/update`` with only the parts that changed; a 422 shows the page
again with the form as typed and the API's message beside the field
(:mod:`spendgate.ui.pages.budget_forms`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext
from spendgate.ui.pages.budget_forms import RATED, budget_changes, refused
from spendgate.ui.pages.edits import TARGETS
from spendgate.ui.pages.entities import render_entity
from spendgate.ui.pages.keys import render_key

__all__ = ["update_budgets"]


def update_budgets(section: str) -> Callable[[PageContext], Awaitable[Response]]:
    is_key = section == "keys"
    with_rates = section in RATED
    id_field = "key" if is_key else TARGETS[section].id_field
    update_path = "/key/update" if is_key else TARGETS[section].update_path

    async def handler(ctx: PageContext) -> Response:
        ident = str(ctx.form.get(id_field) or "").strip()
        if not ident:
            raise ApiError(422, f"{id_field}: say which one")
        try:
            changes = budget_changes(ctx.form, ctx.timezone, with_temp=is_key, with_rates=with_rates)
            if changes:
                await ctx.api.post(update_path, {id_field: ident, **changes})
        except ApiError as exc:
            if exc.status != 422:
                raise
            shown = refused(ctx.form, exc, with_rates=with_rates)
            if is_key:
                return await render_key(ctx, ident, budget_form=shown, status_code=422)
            return await render_entity(ctx, section, ident, budget_form=shown, status_code=422)
        note = "saved" if changes else "unchanged"
        return RedirectResponse(f"/ui/{section}/{quote(ident, safe='')}?{note}=1", status_code=303)

    return handler

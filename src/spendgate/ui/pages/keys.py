"""Keys: list and search, create with a budget, regenerate (the new raw key shown once, on
the answer page only: it is never stored or put in an address); block / unblock is
:mod:`spendgate.ui.pages.blocking`."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext
from spendgate.ui.pages.budget_forms import BudgetForm, form_from_entity
from spendgate.ui.pages.edits import DURATIONS, LIMITS
from spendgate.ui.pages.windows import windows_of

__all__ = ["create_key", "key_page", "keys", "regenerate_key", "render_key"]

_PAGE_SIZE = 25
_SEARCH = ("search", "key_alias", "team_id", "user_id")
"""``search``: a fragment of the alias, name, id, user or team (the API's substring
filter); ``key_alias``, ``team_id``, ``user_id``: exact."""


async def keys(ctx: PageContext) -> Response:
    if ctx.session.role == "key":
        own = (await ctx.api.get("/key/info"))["info"]
        listing: dict[str, Any] = {"keys": [own], "total_pages": 1, "current_page": 1, "total_count": 1}
    else:
        page = ctx.page_number()
        params = {name: ctx.query(name)[:255] for name in _SEARCH}
        listing = await ctx.api.get(
            "/key/list", {"return_full_object": "true", "page": page, "size": _PAGE_SIZE, **params}
        )
    rows = [{"key": k, "window": next(iter(windows_of(k, "key")), None)} for k in listing["keys"]]
    return ctx.render(
        "keys.html",
        rows=rows,
        listing=listing,
        search={name: ctx.query(name)[:255] for name in _SEARCH},
        created=None,
    )


def _optional(form: dict[str, str] | Any, name: str) -> str | None:
    value = str(form.get(name) or "").strip()
    return value or None


async def create_key(ctx: PageContext) -> Response:
    body: dict[str, Any] = {}
    for name in ("key_alias", "team_id", "user_id", "budget_duration"):
        value = _optional(ctx.form, name)
        if value is not None:
            body[name] = value
    for name in ("max_budget", "soft_budget"):
        value = _optional(ctx.form, name)
        if value is not None:
            body[name] = value  # a decimal string: the API reads it exactly
    created = await ctx.api.post("/key/generate", body)
    return ctx.render("key_created.html", created=created, action="created")


async def regenerate_key(ctx: PageContext) -> Response:
    token = _optional(ctx.form, "key")
    if token is None:
        raise ApiError(422, "key: say which key")
    created = await ctx.api.post("/key/regenerate", {"key": token})
    return ctx.render("key_created.html", created=created, action="regenerated")


async def key_page(ctx: PageContext) -> Response:
    """One key (``/key/info?key=``, its hash): budget windows, limits and the forms to edit
    them."""
    return await render_key(ctx, ctx.request.path_params["token"])


async def render_key(
    ctx: PageContext, token: str, *, budget_form: BudgetForm | None = None, status_code: int = 200
) -> Response:
    """The key's page; ``budget_form`` shows the windows form as posted (with the API's
    refusal) instead of the key's current values."""
    info = (await ctx.api.get("/key/info", {"key": token}))["info"]
    return ctx.render(
        "key.html",
        status_code,
        key=info,
        token=token,
        windows=windows_of(info, "key"),
        limits=LIMITS,
        durations=DURATIONS,
        budget=budget_form or form_from_entity(info, ctx.timezone, with_temp=True, with_rates=True),
    )

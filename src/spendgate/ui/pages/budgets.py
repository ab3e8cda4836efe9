"""Budgets: the budget windows of one scope (keys, teams, users, customers or
organizations) that the caller may read, 25 a page, with utilisation bars, soft-budget
markers, reset times and, for keys, the temporary increase and its expiry; for admins, the
shared budget profiles (under the keys).

Each page is one list call with the rows' spend (``/key/list?return_full_object=true``,
``/<scope>/list?with_spend=true``): the API reads every row's windows at once. What a
person sees is what the API lets them list: a 403 there (customers, for anyone but admins)
is the 403 page.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from spendgate.ui.context import PageContext
from spendgate.ui.pages.windows import Window, windows_of

__all__ = ["SCOPES", "budgets"]

_PAGE_SIZE = 25


@dataclass(frozen=True, slots=True)
class Scope:
    """How one scope's entities are listed."""

    title: str
    kind: str  # windows_of's kind, and the API's name: /<kind>/list
    id_field: str  # the entity's id field
    paged: bool = False  # /user/list answers {"users": [...], "total_pages"}; the others a plain list


SCOPES = {
    "teams": Scope("Teams", "team", "team_id"),
    "users": Scope("Users", "user", "user_id", paged=True),
    "customers": Scope("Customers", "customer", "user_id"),
    "organizations": Scope("Organizations", "organization", "organization_id"),
}
TABS = {"keys": "Keys", **{name: scope.title for name, scope in SCOPES.items()}}


async def _scope_page(ctx: PageContext, scope: Scope, page: int) -> tuple[list[Window], int, bool]:
    """The windows of one page of ``scope``, how many of its entities have no budget, and
    whether a next page may follow."""
    params = {"page": page, "page_size": _PAGE_SIZE, "with_spend": "true"}
    answer = await ctx.api.get(f"/{scope.kind}/list", params)
    rows = list(answer["users"] if scope.paged else answer)
    has_next = page < int(answer.get("total_pages") or 0) if scope.paged else len(rows) == _PAGE_SIZE
    windows = [w for row in rows for w in windows_of(row, scope.kind, scope.id_field)]
    return windows, sum(1 for row in rows if not row.get("budget_windows")), has_next


async def budgets(ctx: PageContext) -> Response:
    page = ctx.page_number()
    tab = ctx.query("scope") or "keys"
    if tab not in TABS:
        tab = "keys"
    without = 0
    if tab == "keys":
        keys = await ctx.visible_keys(page, _PAGE_SIZE)
        windows = [w for key in keys for w in windows_of(key, "key")]
        without = sum(1 for key in keys if not key.get("budget_windows"))
        has_next = len(keys) >= _PAGE_SIZE
    else:
        windows, without, has_next = await _scope_page(ctx, SCOPES[tab], page)
    with_profiles = tab == "keys" and ctx.session.is_admin and page == 1
    profiles = await ctx.api.get("/budget/list") if with_profiles else []
    return ctx.render(
        "budgets.html",
        tabs=TABS,
        tab=tab,
        windows=windows,
        without=without,
        profiles=profiles,
        page=page,
        has_next=has_next,
    )

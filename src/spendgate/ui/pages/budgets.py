"""Budgets: the budget windows of one scope (keys, teams, users, customers or
organizations) that the caller may read, 25 a page, with utilisation bars, soft-budget
markers, reset times and, for keys, the temporary increase and its expiry; for admins, the
shared budget profiles (under the keys).

Keys come with their windows from one ``/key/list`` call a page (the API computes every
key's spend in one read). The other list endpoints show limits but no spend, so the
entities of the page that have a budget are read through their info endpoints (at most 25,
a few at a time); those without a budget need no call. What a person sees is what the API
lets them list: a 403 there (customers, for anyone but admins) is the 403 page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from spendgate.ui.context import PageContext
from spendgate.ui.pages.windows import Window, windows_of

__all__ = ["SCOPES", "TABS", "budgets"]

_PAGE_SIZE = 25
_READS_AT_ONCE = 5
"""Info reads in flight at once: bounds the database connections one page holds."""


@dataclass(frozen=True, slots=True)
class Scope:
    """How one scope's entities are listed and their windows read."""

    title: str
    kind: str  # windows_of's kind, and the API's name: /<kind>/list, /<kind>/info
    id_field: str  # the entity's id field
    id_param: str  # the info endpoint's query parameter
    info_field: str | None = None  # the info answer's field holding the entity (None: the answer)
    paged: bool = False  # whether /<kind>/list pages (answering {"users": [...]}); else cut here


SCOPES = {
    "teams": Scope("Teams", "team", "team_id", "team_id", "team_info"),
    "users": Scope("Users", "user", "user_id", "user_id", "user_info", paged=True),
    "customers": Scope("Customers", "customer", "user_id", "end_user_id"),
    "organizations": Scope("Organizations", "organization", "organization_id", "organization_id"),
}
TABS = {"keys": "Keys", **{name: scope.title for name, scope in SCOPES.items()}}


def _has_budget(entity: Mapping[str, Any]) -> bool:
    """Whether an entity as a list shows it has any budget window (a budget, a soft budget,
    ``budget_limits``, a per-model budget or a budget profile): only those are read."""
    if any(entity.get(name) is not None for name in ("max_budget", "soft_budget", "budget_id")):
        return True
    models = entity.get("model_max_budget") or {}
    return bool(entity.get("budget_limits")) or any(
        isinstance(cfg, dict) and cfg.get("max_budget") is not None for cfg in models.values()
    )


async def _scope_page(ctx: PageContext, scope: Scope, page: int) -> tuple[list[Window], int, int]:
    """The windows of one page of ``scope``, how many entities the page has without a
    budget, and the number of pages."""
    if scope.paged:
        answer = await ctx.api.get(f"/{scope.kind}/list", {"page": page, "page_size": _PAGE_SIZE})
        rows = list(answer[f"{scope.kind}s"])
        pages = int(answer.get("total_pages") or 0)
    else:
        everything = list(await ctx.api.get(f"/{scope.kind}/list"))
        rows = everything[(page - 1) * _PAGE_SIZE : page * _PAGE_SIZE]
        pages = -(-len(everything) // _PAGE_SIZE)
    budgeted = [r for r in rows if _has_budget(r)]
    gate = asyncio.Semaphore(_READS_AT_ONCE)

    async def read(row: Mapping[str, Any]) -> list[Window]:
        async with gate:
            info = await ctx.api.get(f"/{scope.kind}/info", {scope.id_param: row[scope.id_field]})
        entity = info[scope.info_field] if scope.info_field else info
        return windows_of(entity, scope.kind, scope.id_field)

    found = await asyncio.gather(*(read(r) for r in budgeted))
    return [w for ws in found for w in ws], len(rows) - len(budgeted), pages


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
        windows, without, pages = await _scope_page(ctx, SCOPES[tab], page)
        has_next = page < pages
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

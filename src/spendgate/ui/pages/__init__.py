"""The dashboard's pages: ``(path under /ui, handler, methods)``, in menu order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from spendgate.ui.context import PageContext
from spendgate.ui.pages.alerts import alerts
from spendgate.ui.pages.batches import batches
from spendgate.ui.pages.blocking import BLOCKABLE, block
from spendgate.ui.pages.budget_edits import update_budgets
from spendgate.ui.pages.budgets import budgets
from spendgate.ui.pages.edits import create_entity, update_entity, update_key, update_key_lists
from spendgate.ui.pages.entities import entity_list, entity_page
from spendgate.ui.pages.keys import create_key, key_page, keys, regenerate_key
from spendgate.ui.pages.logs import logs
from spendgate.ui.pages.members import add_member, remove_member
from spendgate.ui.pages.overview import overview, tightest
from spendgate.ui.pages.spend import export, spend

__all__ = ["MENU", "PAGES"]

Handler = Callable[[PageContext], Awaitable[Response]]

PAGES: list[tuple[str, Handler, tuple[str, ...]]] = [
    ("/overview", overview, ("GET",)),
    ("/overview/tightest", tightest, ("GET",)),
    ("/spend", spend, ("GET",)),
    ("/spend/export", export, ("GET",)),
    ("/keys", keys, ("GET",)),
    ("/keys/create", create_key, ("POST",)),
    ("/keys/block", block("keys"), ("POST",)),
    ("/keys/regenerate", regenerate_key, ("POST",)),
    ("/keys/update", update_key, ("POST",)),
    ("/keys/budgets", update_budgets("keys"), ("POST",)),
    ("/keys/lists", update_key_lists, ("POST",)),
    ("/keys/{token}", key_page, ("GET",)),
    ("/budgets", budgets, ("GET",)),
    ("/teams/members/add", add_member, ("POST",)),
    ("/teams/members/delete", remove_member, ("POST",)),
    *(
        route
        for section in ("teams", "users", "customers")
        for route in (
            (f"/{section}", entity_list(section), ("GET",)),
            (f"/{section}/create", create_entity(section), ("POST",)),
            (f"/{section}/update", update_entity(section), ("POST",)),
            (f"/{section}/budgets", update_budgets(section), ("POST",)),
            *([(f"/{section}/block", block(section), ("POST",))] if section in BLOCKABLE else []),
            (f"/{section}/{{ident:path}}", entity_page(section), ("GET",)),
        )
    ),
    ("/batches", batches, ("GET",)),
    ("/logs", logs, ("GET",)),
    ("/alerts", alerts, ("GET",)),
]

MENU = [
    ("/ui/overview", "Overview"),
    ("/ui/spend", "Spend"),
    ("/ui/keys", "Keys"),
    ("/ui/budgets", "Budgets"),
    ("/ui/teams", "Teams"),
    ("/ui/users", "Users"),
    ("/ui/customers", "Customers"),
    ("/ui/batches", "Batches"),
    ("/ui/logs", "Logs"),
    ("/ui/alerts", "Alerts"),
]

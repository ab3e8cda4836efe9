"""The management API's routes (LiteLLM's paths and fields) and its OpenAPI document.

The composition root (:func:`spendgate.server.build_app`) mounts them beside the gateway's
routes with :func:`admin_routes` and an :class:`~spendgate.admin.AdminSettings` (engine,
master key, key-change callback, explainer, budget-exceeded status); neither package
imports the other. :func:`build_admin_app` runs them alone (tests, a separate admin port).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spendgate.admin import (
    activity,
    alerting,
    budget_explain,
    budget_tightest,
    budgets,
    customers,
    exports,
    keys,
    organizations,
    spend,
    teams,
    users,
)
from spendgate.admin import schemas as s
from spendgate.admin._http import AdminSettings, Endpoint, Explainer, endpoint, make_handler
from spendgate.admin.openapi import build_document
from spendgate.http.errors import GatewayError, MethodNotAllowed, NotFound, render_error

__all__ = ["ENDPOINTS", "admin_routes", "build_admin_app", "openapi_document"]

_ep = endpoint


def _customer_endpoints(prefix: str) -> list[Endpoint]:
    return [
        _ep(f"/{prefix}/new", customers.new_customer, "Create a customer (end user)", body=s.CustomerNew),
        _ep(
            f"/{prefix}/info",
            customers.customer_info,
            "Read a customer",
            query=s.CustomerInfoQuery,
            write=False,
        ),
        _ep(f"/{prefix}/update", customers.update_customer, "Change a customer", body=s.CustomerUpdate),
        _ep(f"/{prefix}/delete", customers.delete_customers, "Delete customers", body=s.CustomerIds),
        _ep(
            f"/{prefix}/list",
            customers.list_customers,
            "List customers",
            query=s.CustomerListQuery,
            write=False,
        ),
        _ep(f"/{prefix}/block", customers.block_customers, "Block customers", body=s.CustomerIds),
        _ep(f"/{prefix}/unblock", customers.unblock_customers, "Unblock customers", body=s.CustomerIds),
    ]


ENDPOINTS: tuple[Endpoint, ...] = (
    _ep(
        "/key/generate",
        keys.generate_key,
        "Create a virtual key (the raw key is shown once)",
        body=s.KeyGenerate,
    ),
    _ep("/key/update", keys.update_key, "Change a key", body=s.KeyUpdate),
    _ep(
        "/key/info",
        keys.key_info,
        "Read a key (default: the caller's own)",
        query=s.KeyInfoQuery,
        write=False,
    ),
    _ep("/key/list", keys.list_keys, "List keys", query=s.KeyListQuery, write=False),
    _ep("/key/delete", keys.delete_key, "Delete keys", body=s.KeyDelete),
    _ep("/key/regenerate", keys.regenerate_key, "Replace a key's secret", body=s.KeyRegenerate),
    _ep(
        "/key/{key}/regenerate",
        keys.regenerate_key,
        "Replace a key's secret (LiteLLM form; pass the hash, not the raw key, in the URL)",
        body=s.KeyRegenerateByPath,
        path_param="key",
    ),
    _ep("/key/block", keys.block_key, "Block a key", body=s.KeyRef),
    _ep("/key/unblock", keys.unblock_key, "Unblock a key", body=s.KeyRef),
    _ep("/user/new", users.new_user, "Create a user (and, by default, a key for it)", body=s.UserNew),
    _ep(
        "/user/info",
        users.user_info,
        "Read a user with their keys and teams",
        query=s.UserInfoQuery,
        write=False,
    ),
    _ep("/user/update", users.update_user, "Change a user", body=s.UserUpdate),
    _ep("/user/delete", users.delete_users, "Delete users with their keys", body=s.UserIds),
    _ep("/user/list", users.list_users, "List users", query=s.UserListQuery, write=False),
    _ep("/team/new", teams.new_team, "Create a team", body=s.TeamNew),
    _ep(
        "/team/info", teams.team_info, "Read a team with keys and members", query=s.TeamInfoQuery, write=False
    ),
    _ep("/team/update", teams.update_team, "Change a team", body=s.TeamUpdate),
    _ep("/team/delete", teams.delete_team, "Delete teams with their keys", body=s.TeamIds),
    _ep("/team/list", teams.list_teams, "List teams", query=s.TeamListQuery, write=False),
    _ep("/team/block", teams.block_team, "Block a team: its keys are refused", body=s.TeamBlock),
    _ep("/team/unblock", teams.unblock_team, "Unblock a team", body=s.TeamBlock),
    _ep("/team/member_add", teams.add_members, "Add members (with an in-team budget)", body=s.TeamMemberAdd),
    _ep(
        "/team/member_update",
        teams.member_update,
        "Change a member's role or budget",
        body=s.TeamMemberUpdate,
    ),
    _ep(
        "/team/member_delete",
        teams.member_delete,
        "Remove a member (and their team keys)",
        body=s.TeamMemberDelete,
    ),
    _ep(
        "/organization/new", organizations.new_organization, "Create an organization", body=s.OrganizationNew
    ),
    _ep(
        "/organization/info",
        organizations.organization_info,
        "Read an organization",
        query=s.OrganizationInfoQuery,
        write=False,
    ),
    _ep(
        "/organization/update",
        organizations.update_organization,
        "Change an organization",
        body=s.OrganizationUpdate,
        methods=("PATCH", "POST"),
    ),
    _ep(
        "/organization/delete",
        organizations.delete_organizations,
        "Delete organizations",
        body=s.OrganizationIds,
        methods=("DELETE", "POST"),
    ),
    _ep(
        "/organization/list",
        organizations.list_organizations,
        "List organizations",
        query=s.OrganizationListQuery,
        write=False,
    ),
    *_customer_endpoints("customer"),
    *_customer_endpoints("end_user"),
    _ep("/budget/new", budgets.new_budget, "Create a budget profile", body=s.BudgetNew),
    _ep("/budget/info", budgets.budget_info, "Read budget profiles", body=s.BudgetIds, write=False),
    _ep(
        "/budget/info",
        budgets.budget_info_query,
        "Read a budget profile (?budget_id=)",
        query=s.BudgetInfoQuery,
        write=False,
    ),
    _ep("/budget/update", budgets.update_budget, "Change a budget profile", body=s.BudgetUpdate),
    _ep("/budget/delete", budgets.delete_budget, "Delete a budget profile", body=s.BudgetDelete),
    _ep("/budget/list", budgets.list_budgets, "List budget profiles", query=s.Empty, write=False),
    _ep(
        "/budget/explain",
        budget_explain.explain_budget,
        "Every budget scope and window of a key: spend, reserved, limit, period, verdict",
        body=s.BudgetExplain,
        write=False,
    ),
    _ep(
        "/budget/tightest",
        budget_tightest.tightest_budgets,
        "The keys nearest their budget limits, among every key the caller may read",
        query=s.BudgetTightestQuery,
        write=False,
        plain_keys=True,
    ),
    *spend.ENDPOINTS,
    *activity.ENDPOINTS,
    *exports.ENDPOINTS,
    *alerting.ENDPOINTS,
)
"""Every management endpoint (``/end_user/*`` are LiteLLM's aliases of ``/customer/*``)."""


def admin_routes(settings: AdminSettings, *, with_openapi: bool = True) -> list[Route]:
    """The management routes (plus ``GET /openapi.json``), to add to an app's routes."""
    routes = [Route(ep.path, make_handler(ep, settings), methods=list(ep.methods)) for ep in ENDPOINTS]
    if with_openapi:
        routes.append(Route("/openapi.json", _openapi, methods=["GET"]))
    return routes


def build_admin_app(
    engine: AsyncEngine | Callable[[Request], AsyncEngine],
    master_key: str | None,
    *,
    on_key_change: Callable[[Request, str], None] | None = None,
    explainer: Explainer | None = None,
    budget_exceeded_status: int = 429,
    served_by: Callable[[str], Sequence[str]] | None = None,
) -> Starlette:
    """A standalone Starlette app serving only the management API (404 and 405 in the
    error shape too). Without ``served_by`` (a model group's deployment ids; there is no
    router) a ``model_max_budget`` window shows the spend of the model that served
    (:mod:`spendgate.admin.entity_spend`)."""
    settings = AdminSettings.from_master_key(
        engine,
        master_key,
        on_key_change=on_key_change,
        explainer=explainer,
        budget_exceeded_status=budget_exceeded_status,
        served_by=served_by,
    )
    return Starlette(routes=admin_routes(settings), exception_handlers={HTTPException: _no_route})


async def _no_route(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: GatewayError = (
        MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        if exc.status_code == 405
        else NotFound(f"no route {request.method} {request.url.path}")
    )
    status, body, headers = render_error(error)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


_OPENAPI_CACHE: list[bytes] = []


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every management endpoint (see :mod:`spendgate.admin.openapi`)."""
    return build_document(ENDPOINTS)


async def _openapi(request: Request) -> Response:
    if not _OPENAPI_CACHE:
        _OPENAPI_CACHE.append(orjson.dumps(openapi_document()))
    return Response(_OPENAPI_CACHE[0], media_type="application/json")

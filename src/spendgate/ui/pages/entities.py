"""Teams, users and customers: a list, and each one's page with its budget windows, keys and
members, read from the API's list and info endpoints (a 403 there is a 403 page here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from spendgate.ui.context import PageContext
from spendgate.ui.pages.blocking import BLOCKABLE
from spendgate.ui.pages.budget_forms import RATED, BudgetForm, form_from_entity
from spendgate.ui.pages.edits import DURATIONS, LIMITS, TARGETS
from spendgate.ui.pages.members import ROLES, can_manage_members
from spendgate.ui.pages.windows import windows_of

__all__ = ["KINDS", "entity_list", "entity_page", "render_entity"]


@dataclass(frozen=True, slots=True)
class Kind:
    """How one kind of entity is listed and read."""

    name: str  # "team"
    title: str  # "Teams"
    list_path: str
    info_path: str
    id_param: str  # the info endpoint's query parameter
    id_field: str  # the entity's id field
    label_field: str
    scope: str  # windows_of's kind


KINDS = {
    "teams": Kind("team", "Teams", "/team/list", "/team/info", "team_id", "team_id", "team_alias", "team"),
    "users": Kind("user", "Users", "/user/list", "/user/info", "user_id", "user_id", "user_alias", "user"),
    "customers": Kind(
        "customer",
        "Customers",
        "/customer/list",
        "/customer/info",
        "end_user_id",
        "user_id",
        "alias",
        "customer",
    ),
}


def _items(answer: Any) -> list[dict[str, Any]]:
    """The entities of a list answer (a plain list, or LiteLLM's ``{"users": [...]}``)."""
    if isinstance(answer, dict):
        for field in ("users", "teams", "customers", "data"):
            if isinstance(answer.get(field), list):
                return list(answer[field])
        return []
    return list(answer or [])


def _can_block(ctx: PageContext, section: str) -> bool:
    """Whether to offer block buttons: teams and customers are blocked by proxy admins
    only (the API refuses anyone else; a forged POST gets that 403)."""
    return section in BLOCKABLE and ctx.session.role == "proxy_admin"


def entity_list(section: str) -> Callable[[PageContext], Awaitable[Response]]:
    kind = KINDS[section]

    async def handler(ctx: PageContext) -> Response:
        # ``search``: the API's own substring filter (id, name, e-mail), so it finds what
        # is beyond the first page too.
        params: dict[str, Any] = {"search": ctx.query("q")[:255]}
        if kind.name == "user":
            params.update(page=ctx.page_number(), page_size=50)
        answer = await ctx.api.get(kind.list_path, params)
        items = _items(answer)
        return ctx.render(
            "entities.html",
            kind=kind,
            section=section,
            items=items,
            q=ctx.query("q"),
            answer=answer,
            can_block=_can_block(ctx, section),
            limits=LIMITS,
            durations=DURATIONS,
        )

    return handler


def entity_page(section: str) -> Callable[[PageContext], Awaitable[Response]]:
    async def handler(ctx: PageContext) -> Response:
        return await render_entity(ctx, section, ctx.request.path_params["ident"])

    return handler


async def render_entity(
    ctx: PageContext,
    section: str,
    ident: str,
    *,
    budget_form: BudgetForm | None = None,
    status_code: int = 200,
) -> Response:
    """One team's, user's or customer's page; ``budget_form`` shows the windows form as
    posted (with the API's refusal) instead of the current values."""
    kind = KINDS[section]
    answer = await ctx.api.get(kind.info_path, {kind.id_param: ident})
    entity = answer.get(f"{kind.name}_info") or answer
    keys = answer.get("keys") or []
    members = [m for m in entity.get("members_with_roles") or answer.get("team_memberships") or [] if m]
    in_team = {m.get("user_id"): m.get("max_budget_in_team") for m in answer.get("team_memberships") or ()}
    members = [{**m, "max_budget_in_team": in_team.get(m.get("user_id"))} for m in members]
    return ctx.render(
        "entity.html",
        status_code,
        kind=kind,
        section=section,
        ident=ident,
        entity=entity,
        windows=windows_of(entity, kind.scope, kind.id_field),
        keys=[k for k in keys if isinstance(k, dict)],
        members=members,
        manage_members=section == "teams" and can_manage_members(ctx.session, members),
        member_roles=ROLES,
        id_name=TARGETS[section].id_field,
        can_block=_can_block(ctx, section),
        limits=LIMITS,
        durations=DURATIONS,
        budget=budget_form
        or form_from_entity(entity, ctx.timezone, with_temp=False, with_rates=section in RATED),
    )

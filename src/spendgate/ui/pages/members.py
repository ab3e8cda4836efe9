"""A team's members, from its page: add one (user id, role, an optional in-team budget)
through ``/team/member_add`` and remove one through ``/team/member_delete``, as the
signed-in key, so the API decides who may (proxy admins and the team's admins; anyone
else's forged POST is its 403 page). Removing a member deletes their keys in the team (the
API's rule: they would keep spending its budget), so the button asks first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext
from spendgate.ui.session import Session

__all__ = ["ROLES", "add_member", "can_manage_members", "remove_member"]

ROLES = ("user", "admin")


def can_manage_members(session: Session, members: Sequence[Mapping[str, Any]]) -> bool:
    """Whether to offer the member forms: to proxy admins and the team's own admins."""
    if session.role == "proxy_admin":
        return True
    return session.user_id is not None and any(
        m.get("user_id") == session.user_id and m.get("role") == "admin" for m in members
    )


def _field(ctx: PageContext, name: str) -> str:
    value = str(ctx.form.get(name) or "").strip()
    if not value:
        raise ApiError(422, f"{name}: required")
    return value


def _back(team_id: str, note: str, user_id: str) -> Response:
    return RedirectResponse(
        f"/ui/teams/{quote(team_id, safe='')}?{note}={quote(user_id, safe='')}", status_code=303
    )


async def add_member(ctx: PageContext) -> Response:
    """``POST /ui/teams/members/add`` → ``/team/member_add``, back to the team's page."""
    team_id, user_id = _field(ctx, "team_id"), _field(ctx, "user_id")
    role = str(ctx.form.get("role") or "user")
    if role not in ROLES:
        raise ApiError(422, "role: user or admin")
    body: dict[str, Any] = {"team_id": team_id, "member": {"user_id": user_id, "role": role}}
    if budget := str(ctx.form.get("max_budget_in_team") or "").strip():
        body["max_budget_in_team"] = budget  # decimal text: the API reads it exactly
    await ctx.api.post("/team/member_add", body)
    return _back(team_id, "member_added", user_id)


async def remove_member(ctx: PageContext) -> Response:
    """``POST /ui/teams/members/delete`` → ``/team/member_delete``, back to the team's page."""
    team_id, user_id = _field(ctx, "team_id"), _field(ctx, "user_id")
    await ctx.api.post("/team/member_delete", {"team_id": team_id, "user_id": user_id})
    return _back(team_id, "member_removed", user_id)

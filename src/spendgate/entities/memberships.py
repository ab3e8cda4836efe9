"""Team memberships: who is in a team, with which role, and their own budget inside it.

A member's budget (``max_budget_in_team``, ``budget_duration``, ``tpm_limit``,
``rpm_limit``, ``allowed_models``) is a ``budgets`` row owned by the membership: created
with it, deleted with it. Adding a member who is not a user yet creates the user (an
``internal_user``). Used by both /team/* and /user/* (a new user may join teams).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from spendgate.entities.codec import nanos
from spendgate.entities.errors import EntityConflict, EntityNotFound
from spendgate.entities.service import EntityService
from spendgate.stores.database.models import Budget, Team, TeamMembership, User

__all__ = [
    "add_member",
    "delete_memberships",
    "member_budget_fields",
    "membership_of",
    "set_member_budget",
    "user_for_member",
]


async def user_for_member(svc: EntityService, user_id: str | None, email: str | None) -> User:
    """The member's user, created as an internal_user if it does not exist yet."""
    user: User | None = None
    if user_id is not None:
        user = await svc.repo.get(User, user_id)
    elif email is not None:
        user = await svc.repo.user_by_email(email)
    if user is None:
        user = User(
            user_id=user_id or str(uuid.uuid4()), user_email=email, user_role="internal_user", blocked=False
        )
        svc.stamp(user, created=True)
        await svc.repo.add(user)
    return user


async def add_member(
    svc: EntityService,
    team: Team,
    *,
    user_id: str | None,
    email: str | None,
    role: str,
    budget_fields: dict[str, Any] | None,
) -> tuple[User, TeamMembership]:
    """Add the user (made if new) to ``team`` with ``role`` and, if ``budget_fields``, a
    budget of their own in it; 409 if they are a member already."""
    user = await user_for_member(svc, user_id, email)
    if await svc.repo.get(TeamMembership, (user.user_id, team.team_id)) is not None:
        raise EntityConflict(
            f"user {user.user_id!r} is already a member of team {team.team_id!r}", param="member"
        )
    m = TeamMembership(user_id=user.user_id, team_id=team.team_id, role=role)
    if budget_fields:
        budget = Budget(budget_id=str(uuid.uuid4()), budget_start=svc.now, **budget_fields)
        svc.stamp(budget, created=True)
        await svc.repo.add(budget)
        m.budget_id = budget.budget_id
    svc.stamp(m, created=True)
    await svc.repo.add(m)
    return user, m


def member_budget_fields(body: Any) -> dict[str, Any]:
    """The member-budget columns a request gave (``max_budget_in_team`` in nano-USD)."""
    given = body.model_fields_set
    fields: dict[str, Any] = {}
    if "max_budget_in_team" in given:
        fields["max_budget_nanos"] = nanos(body.max_budget_in_team)
    for name in ("budget_duration", "allowed_models", "tpm_limit", "rpm_limit"):
        if name in given:
            fields[name] = getattr(body, name)
    return fields


async def membership_of(
    svc: EntityService, team_id: str, user_id: str | None, email: str | None
) -> TeamMembership:
    """The membership of the user (by id, else e-mail) in the team, or 404."""
    if user_id is None:
        user_id = await svc.repo.user_id_by_email(email)
    m = await svc.repo.get(TeamMembership, (user_id, team_id)) if user_id is not None else None
    if m is None:
        raise EntityNotFound(f"{user_id or email!r} is not a member of team {team_id!r}", param="user_id")
    return m


async def set_member_budget(svc: EntityService, m: TeamMembership, fields: dict[str, Any]) -> Budget | None:
    """Change the member's budget by ``fields`` (made if they had none); returns it."""
    budget = await svc.repo.get(Budget, m.budget_id) if m.budget_id else None
    if fields and budget is None:
        budget = Budget(budget_id=str(uuid.uuid4()), budget_start=svc.now, **fields)
        svc.stamp(budget, created=True)
        await svc.repo.add(budget)
        m.budget_id = budget.budget_id
    elif fields and budget is not None:
        if "budget_duration" in fields and fields["budget_duration"] != budget.budget_duration:
            budget.budget_start = svc.now  # a new duration starts its periods now
        for name, value in fields.items():
            setattr(budget, name, value)
        svc.stamp(budget)
    return budget


async def delete_memberships(
    svc: EntityService,
    *,
    team_ids: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
) -> None:
    """Delete the memberships in ``team_ids`` of ``user_ids`` (None: any) and the budget
    rows they own."""
    rows = await svc.repo.memberships(team_ids=team_ids, user_ids=user_ids)
    budget_ids = [m.budget_id for m in rows if m.budget_id]
    for m in rows:
        await svc.repo.remove(m)
    await svc.repo.flush()
    if budget_ids:
        await svc.repo.delete_by_ids(Budget, "budget_id", budget_ids)

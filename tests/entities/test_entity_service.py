"""The entity service: create / update / delete written once, membership and key rules,
refusals as entity errors (no HTTP), nothing committed by the service."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.entities import EntityConflict, EntityInvalid, EntityNotFound, EntityRepository, EntityService
from spendgate.entities.keys import delete_keys_of, key_display, new_raw_key
from spendgate.entities.memberships import add_member, delete_memberships, membership_of
from spendgate.entities.service import BUDGETS, ORGANIZATIONS, TEAMS, merged_metadata
from spendgate.stores.database.models import Budget, Team, TeamMembership, User, VirtualKey

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class _Window(BaseModel):
    budget_duration: str
    max_budget: Decimal | None


class _TeamBody(BaseModel):
    team_alias: str | None = None
    organization_id: str | None = None
    budget_id: str | None = None
    max_budget: Decimal | None = None
    metadata: dict[str, Any] | None = None
    budget_limits: list[_Window] | None = None


def _service(session: AsyncSession) -> EntityService:
    return EntityService(EntityRepository(session), now=NOW, by="tester")


async def test_create_update_delete_with_windows(engine: AsyncEngine) -> None:
    body = _TeamBody(
        team_alias="a",
        max_budget=Decimal("1.5"),
        budget_limits=[_Window(budget_duration="1d", max_budget=Decimal("0.25"))],
    )
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        svc = _service(session)

        async def fill(team: Team) -> None:
            await svc.check_refs(body, [("organization_id", ORGANIZATIONS), ("budget_id", BUDGETS)])
            svc.apply_fields(team, body, ("team_alias",))

        team = await svc.create(TEAMS, "t1", fill, windows=body.budget_limits)
        assert (team.team_alias, team.max_budget_nanos, team.blocked) == ("a", 1_500_000_000, False)
        assert (team.created_by, team.created_at) == ("tester", NOW)
        windows = await svc.repo.windows("team", ["t1"])
        assert [(w.budget_duration, w.max_budget_nanos) for w in windows["t1"]] == [("1d", 250_000_000)]
        with pytest.raises(EntityConflict) as conflict:
            await svc.create(TEAMS, "t1", fill)
        assert (conflict.value.message, conflict.value.param) == ("team 't1' already exists", "team_id")

        change = _TeamBody(budget_limits=[])
        await svc.save(TEAMS, team, change)
        assert (await svc.repo.windows("team", ["t1"]))["t1"] == []

        await svc.delete(TEAMS, ["t1"])
        with pytest.raises(EntityNotFound) as missing:
            await svc.require(TEAMS, "t1", "team_ids")
        assert (missing.value.message, missing.value.param) == ("team 't1' not found", "team_ids")


async def test_refs_and_reserved_metadata(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        svc = _service(session)
        with pytest.raises(EntityNotFound) as missing:
            await svc.check_refs(_TeamBody(budget_id="nope"), [("budget_id", BUDGETS)])
        assert missing.value.param == "budget_id"
        await svc.check_refs(_TeamBody(), [("budget_id", BUDGETS)])  # not given: not checked
    with pytest.raises(EntityInvalid):
        merged_metadata({}, {"temp_budget_increase_nanos": 1})
    assert merged_metadata({"tags": ["x"], "a": 1}, {"b": Decimal("2")}) == {"tags": ["x"], "b": 2}


async def test_memberships_own_their_budgets(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        svc = _service(session)
        team = Team(team_id="t1", blocked=False)
        await svc.repo.add(team)
        user, m = await add_member(
            svc,
            team,
            user_id=None,
            email="a@example.com",
            role="admin",
            budget_fields={"max_budget_nanos": 5},
        )
        assert user.user_role == "internal_user" and m.budget_id is not None
        with pytest.raises(EntityConflict):
            await add_member(svc, team, user_id=user.user_id, email=None, role="user", budget_fields=None)
        assert (await membership_of(svc, "t1", None, "a@example.com")).user_id == user.user_id
        budget_id = m.budget_id
        await delete_memberships(svc, team_ids=["t1"], user_ids=[user.user_id])
        assert await svc.repo.get(TeamMembership, (user.user_id, "t1")) is None
        assert await svc.repo.get(Budget, budget_id) is None
        with pytest.raises(EntityNotFound):
            await membership_of(svc, "t1", user.user_id, None)


async def test_delete_keys_returns_both_names(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        svc = _service(session)
        await svc.repo.add(User(user_id="u1", blocked=False))
        raw = new_raw_key()
        prefix, name = key_display(raw)
        assert raw.startswith(prefix) and name.endswith(raw[-4:])
        await svc.repo.add(
            VirtualKey(token="h2", key_id="h1", key_prefix=prefix, key_name=name, user_id="u1")
        )
        assert await delete_keys_of(svc, user_ids=["u1"]) == ["h2", "h1"]
        assert await svc.repo.get(VirtualKey, "h2") is None

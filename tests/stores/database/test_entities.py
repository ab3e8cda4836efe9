from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    Tag,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)


@pytest.mark.asyncio
async def test_entities_round_trip(engine: AsyncEngine) -> None:
    expires = datetime(2027, 1, 1, 12, 30, tzinfo=UTC)
    async with AsyncSession(engine) as session, session.begin():
        session.add(
            Budget(budget_id="b1", max_budget_nanos=10**18, budget_duration="30d", allowed_models=["a"])
        )
        await session.flush()
        session.add(Organization(organization_id="o1", organization_alias="Org", budget_id="b1"))
        await session.flush()
        session.add(Team(team_id="t1", organization_id="o1", max_budget_nanos=5 * 10**9, metadata_={"x": 1}))
        session.add(User(user_id="u1", user_role="proxy_admin", organization_id="o1"))
        session.add(EndCustomer(user_id="c1", alias="Acme", blocked=True))
        session.add(Tag(tag_name="prod", budget_id="b1"))
        await session.flush()
        session.add(TeamMembership(user_id="u1", team_id="t1", budget_id="b1"))
        session.add(
            BudgetWindow(scope_type="team", scope_id="t1", budget_duration="1d", max_budget_nanos=10**9)
        )
        session.add(
            BudgetWindow(scope_type="team", scope_id="t1", budget_duration="30d", max_budget_nanos=10**10)
        )
        session.add(
            VirtualKey(
                token="ab" * 32,
                key_id="ab" * 32,
                key_prefix="sk-…abcd",
                key_alias="ci",
                expires=expires,
                models=["gpt-4o"],
                tags=["prod"],
                team_id="t1",
                user_id="u1",
                end_user_id="c1",
                metadata_={"model_rpm_limit": {"gpt-4o": 10}},
            )
        )
    async with AsyncSession(engine) as session:
        key = (await session.execute(select(VirtualKey))).scalar_one()
        assert key.expires == expires and key.blocked is False
        assert key.metadata_ == {"model_rpm_limit": {"gpt-4o": 10}} and key.tags == ["prod"]
        assert key.created_at.tzinfo is not None
        budget = await session.get(Budget, "b1")
        assert budget is not None and budget.max_budget_nanos == 10**18
        windows = (
            await session.execute(select(BudgetWindow).order_by(BudgetWindow.budget_duration))
        ).scalars()
        assert [w.budget_duration for w in windows] == ["1d", "30d"]
        member = await session.get(TeamMembership, ("u1", "t1"))
        assert member is not None and member.budget_id == "b1"

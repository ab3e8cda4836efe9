"""The gateway's entity reads (:class:`spendgate.entities.EntityReader`) on both backends."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.entities import CustomerOwners, EntityReader, LimitSpec
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

pytestmark = pytest.mark.asyncio


async def _seed(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session, session.begin():
        session.add_all([Budget(budget_id="b-team", max_budget_nanos=7, rpm_limit=3)])
        session.add_all([Budget(budget_id="b-member", max_budget_nanos=2)])
        session.add(Organization(organization_id="o1", max_budget_nanos=100))
        await session.flush()
        session.add(Team(team_id="t1", organization_id="o1", budget_id="b-team", models=["m1"]))
        session.add(User(user_id="u1", tpm_limit=50))
        await session.flush()
        session.add(TeamMembership(team_id="t1", user_id="u1", budget_id="b-member"))
        session.add(EndCustomer(user_id="c1", team_id="t1"))
        await session.flush()
        session.add(
            VirtualKey(
                token="h1",
                key_id="k1",
                key_prefix="sk-",
                team_id="t1",
                user_id="u1",
                tags=["x"],
                metadata_={"rpd_limit": 9},
                max_budget_nanos=5,
            )
        )
        session.add(BudgetWindow(scope_type="key", scope_id="k1", budget_duration="1d", max_budget_nanos=4))
        session.add(Tag(tag_name="x", budget_id="b-team"))


async def test_key_by_hash_and_entities(engine: AsyncEngine) -> None:
    await _seed(engine)
    reader = EntityReader(engine)
    assert await reader.key_by_hash("nope") is None
    record = await reader.key_by_hash("h1")
    assert record is not None
    assert (record.key_id, record.team_id, record.organization_id) == ("k1", "t1", "o1")
    assert record.models == () and record.team_models == ("m1",)
    assert record.tags == ("x",) and not record.blocked and not record.team_blocked

    assert await reader.key_entities("missing") is None
    ents = await reader.key_entities("k1")
    assert ents is not None
    assert ents.key.max_budget_nanos == 5 and ents.key.rpd_limit == 9
    assert ents.key.windows == (("1d", 4, None),)
    assert ents.user == LimitSpec(tpm_limit=50)
    assert ents.team is not None and ents.team.max_budget_nanos == 7 and ents.team.rpm_limit == 3
    assert ents.member == LimitSpec(max_budget_nanos=2)
    assert ents.organization_id == "o1" and ents.organization is not None
    assert ents.organization.max_budget_nanos == 100
    assert ents.tags == ("x",)


async def test_customers_and_tags(engine: AsyncEngine) -> None:
    await _seed(engine)
    reader = EntityReader(engine)
    assert await reader.customer_owners("unknown") == CustomerOwners()
    owners = await reader.customer_owners("c1")
    assert owners.teams == frozenset({"t1"})
    assert await reader.customer_limits("c2") is None
    # Concurrent first requests create the customer once.
    await asyncio.gather(*(reader.create_customer("c2", 11) for _ in range(5)))
    await reader.create_customer("c2", 99)  # exists: ignored
    assert await reader.customer_limits("c2") == LimitSpec(max_budget_nanos=11)
    tag = await reader.tag_limits("x")
    assert tag is not None and tag.max_budget_nanos == 7
    assert await reader.tag_limits("y") is None

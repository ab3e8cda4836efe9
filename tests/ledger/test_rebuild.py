from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.periods import period_for
from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit
from spendgate.ledger.rebuild import (
    ScopeWindow,
    current_period_spend,
    current_period_spend_many,
    period_spend,
)
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import drop_expired_partitions

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 11, 18, 14, 35, 10, tzinfo=UTC)


async def _seed(engine: AsyncEngine) -> None:
    events = [
        make_event(1, occurred_at=NOW - timedelta(minutes=1), cost_nanos=100),
        make_event(2, occurred_at=NOW - timedelta(hours=1), cost_nanos=200, tags=("a", "b")),
        make_event(3, occurred_at=NOW - timedelta(hours=15), cost_nanos=400, team_id="team-b"),
        make_event(4, occurred_at=NOW - timedelta(days=3), cost_nanos=800, model="other"),
        make_event(5, occurred_at=NOW - timedelta(days=40), cost_nanos=1600),
        make_event(6, occurred_at=NOW + timedelta(minutes=5), cost_nanos=3200),  # later in this period
    ]
    await LedgerRepository(engine).write_batch(events)


@pytest.mark.parametrize(
    ("scope", "scope_id", "window", "tz", "expected"),
    [
        ("team", "team-a", "1d", "UTC", 100 + 200 + 3200),
        ("team", "team-a", "24h", "Asia/Kolkata", 100 + 200 + 3200),  # day began 17th 18:30Z
        ("team", "team-b", "1d", "UTC", 0),
        ("team", "team-b", "1d", "America/New_York", 0),  # NY day began 05:00Z
        ("global", "", "7d", "UTC", 100 + 200 + 400 + 3200),  # event 4 was on Sunday
        ("key", "hash-a", "1mo", "UTC", 100 + 200 + 400 + 800 + 3200),  # not event 5 (October)
        ("tag", "b", "1h", "UTC", 0),
        ("tag", "a", "6h", "UTC", 200),
        ("customer", "cust-a", "lifetime", "UTC", 6300),
        ("user", "user-a", "1m", "UTC", 0),
        ("user", "user-a", "5m", "UTC", 0),
        ("global", "", "rolling:2h", "UTC", 300),
        ("tag", "a", "rolling:2h", "UTC", 200),
    ],
)
async def test_current_period_spend(
    engine: AsyncEngine, scope: str, scope_id: str, window: str, tz: str, expected: int
) -> None:
    await _seed(engine)
    assert await current_period_spend(engine, scope, scope_id, window, tz=tz, now=NOW) == expected


async def test_batch_form_and_model_filter_and_retention(engine: AsyncEngine) -> None:
    await _seed(engine)
    items = [ScopeWindow("team", "team-a", "1mo"), ScopeWindow("team", "team-a", "1mo", model="other")]
    result = await current_period_spend_many(engine, items, now=NOW)
    assert result[items[0]][1] == 100 + 200 + 800 + 3200
    assert result[items[1]][1] == 800
    assert result[items[0]][0].start == datetime(2026, 11, 1, tzinfo=UTC)
    # Raw events expire; the rollups (and so the rebuild) keep every period exact.
    await drop_expired_partitions(engine, "1d", now=NOW + timedelta(days=60))
    assert await current_period_spend(engine, "customer", "cust-a", "lifetime", now=NOW) == 6300


@pytest.mark.parametrize(
    ("owner", "column"),
    [
        ("key", "api_key"),
        ("user", "user_id"),
        ("team", "team_id"),
        ("organization", "organization_id"),
        ("end_user", "end_user"),
    ],
)
async def test_a_per_model_window_is_its_owners_spend_at_the_groups_deployments(
    engine: AsyncEngine, owner: str, column: str
) -> None:
    """Seeded from the owner's events served by a deployment of the model group (a fallback
    is billed at its own group); ids and group names may both hold a colon."""
    mine = {column: "acme:42"}
    events = [
        make_event(1, occurred_at=NOW - timedelta(minutes=1), cost_nanos=100, deployment_id="d-1", **mine),
        make_event(2, occurred_at=NOW - timedelta(hours=2), cost_nanos=200, deployment_id="d-2", **mine),
        make_event(3, occurred_at=NOW - timedelta(minutes=2), cost_nanos=400, deployment_id="d-3", **mine),
        make_event(4, occurred_at=NOW - timedelta(minutes=3), cost_nanos=800, deployment_id="d-1"),
        make_event(5, occurred_at=NOW - timedelta(days=2), cost_nanos=1600, deployment_id="d-1", **mine),
    ]
    await LedgerRepository(engine).write_batch(events)
    groups = {"llama3:8b": ["d-1", "d-2"], "other": ["d-3"]}
    budget = BudgetLimit.of(Scope.per_model(Scope(owner, "acme:42"), "llama3:8b"), "1d", 10**9)
    period = period_for(budget.window, NOW, "UTC")
    spent = await period_spend(engine, budget, period, tz="UTC", served_by=lambda g: groups.get(g, []))
    assert spent == 100 + 200  # not another group's (3), another owner's (4), another day's (5)

"""A ``model_max_budget`` window in the entity views, read by model group: each entity's
figure is the seed the enforcer sets its counter to (:func:`spendgate.ledger.rebuild.period_spend`
over the budget enforcement builds), for every owner type, on SQLite and PostgreSQL.

The group ``cent`` is served by deployment ``d-cent`` under the model name ``cent-model``;
the group ``cent-b`` by ``d-b`` under the same name. Without the router's map (the admin app
run alone) the window falls back to the spend of the model that served, named ``cent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.admin.entity_spend import SpendAt, entity_spend
from spendgate.core.periods import period_for
from spendgate.core.scopes import SCOPE_TYPES, Scope
from spendgate.entities.codec import LimitSpec
from spendgate.entities.repository import EntityRepository
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.rebuild import period_spend
from spendgate.ledger.repository import LedgerRepository

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 12, 10, 14, 37, 12, tzinfo=UTC)
GROUPS = {"cent": ["d-cent"], "cent-b": ["d-b"]}
COLUMNS = {
    "key": "api_key",
    "user": "user_id",
    "team": "team_id",
    "organization": "organization_id",
    "end_user": "end_user",
}
SPEC = LimitSpec(
    model_max_budget={
        "cent": {"max_budget_nanos": 10**9, "budget_duration": "1d"},
        "gone": {"max_budget_nanos": 10**9},  # a group the router does not know (lifetime)
    }
)


def _served_by(group: str) -> Sequence[str]:
    return GROUPS.get(group, [])


def _events(column: str) -> list[SpendEvent]:
    """Today at ``cent`` (owners o-1 and o-2), at ``cent-b``, yesterday, and at a group
    since removed (``gone``, asked for by name, served under ``gone-model``)."""
    rows = [
        ("o-1", NOW - timedelta(minutes=5), 1_000_001, "d-cent", "cent"),
        ("o-1", NOW - timedelta(hours=14), 20_000_003, "d-cent", "cent"),  # 00:37 today
        ("o-2", NOW - timedelta(minutes=1), 300_000_007, "d-cent", "cent"),
        ("o-1", NOW - timedelta(minutes=2), 4_000_000_009, "d-b", "cent-b"),
        ("o-1", NOW - timedelta(days=1), 50_000_000_011, "d-cent", "cent"),
        ("o-1", NOW - timedelta(days=3), 600_000_000_013, "d-gone", "gone"),
    ]
    return [
        SpendEvent(
            event_id=f"{column}-{i}",
            occurred_at=at,
            cost_nanos=cost,
            model="cent-model" if group != "gone" else "gone-model",
            requested_model=group,
            deployment_id=deployment,
            provider="openai",
            **cast(dict[str, Any], {column: owner}),
        )
        for i, (owner, at, cost, deployment, group) in enumerate(rows)
    ]


@pytest.mark.parametrize("owner", list(COLUMNS))
async def test_a_model_window_is_the_enforcers_seed(engine: AsyncEngine, owner: str) -> None:
    await LedgerRepository(engine).write_batch(_events(COLUMNS[owner]))
    scope = SCOPE_TYPES[owner]
    ids = ["o-1", "o-2", "o-3"]
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with AsyncSession(engine) as session:
            repo = EntityRepository(session)
            by_group = await entity_spend(
                repo, scope, [(i, SPEC) for i in ids], SpendAt(NOW, "UTC", _served_by)
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    async with AsyncSession(engine) as session:
        alone = await entity_spend(EntityRepository(session), scope, [(i, SPEC) for i in ids], SpendAt(NOW))

    shown = {(i, w.model): w.spend_nanos for i in ids for w in by_group[i].windows}
    assert shown == {
        ("o-1", "cent"): 1_000_001 + 20_000_003,  # not cent-b's, not yesterday's
        ("o-2", "cent"): 300_000_007,
        ("o-3", "cent"): 0,
        ("o-1", "gone"): 600_000_000_013,  # asked for by name, as the seed counts it
        ("o-2", "gone"): 0,
        ("o-3", "gone"): 0,
    }
    for i in ids:  # the seed of each counter enforcement builds
        for group in ("cent", "gone"):
            (budget,) = SPEC.model_limits(
                Scope.per_model(Scope(owner, i), group), group, tz="UTC", rate_window=60
            )[0]
            period = period_for(budget.window, NOW, "UTC", budget.anchor)
            seed = await period_spend(engine, budget, period, tz="UTC", served_by=_served_by)
            (window,) = [w for w in by_group[i].windows if w.model == group]
            assert (window.spend_nanos, window.period) == (seed, period)
    # Every entity's window of one group is one statement on the events.
    assert sum("spend_events" in s for s in statements) == 2

    # Alone (no router): by the model that served, which no event names ``cent``.
    assert {(i, w.model): w.spend_nanos for i in ids for w in alone[i].windows} == dict.fromkeys(shown, 0)

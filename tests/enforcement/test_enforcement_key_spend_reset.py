"""A key's spend set by ``/key/update`` moves its main window only: after a reset of its
daily main budget, its monthly ``budget_limits`` window still holds what was really spent
and refuses the call that would cross it — in the live counters (memory and Redis) and
after the counters are rebuilt from the ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.core.periods import Period
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, KeySpace, Scope, explain
from spendgate.errors import BudgetExceeded
from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.rebuild import period_spend
from spendgate.ledger.repository import LedgerRepository
from spendgate.ledger.scope_spend import range_spend
from spendgate.stores.counters.base import Storage

KEY_ID = "k-reset"
KEY = Scope("key", KEY_ID)
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def req(budgets: list[BudgetLimit], cost: int) -> EnforcementRequest:
    return EnforcementRequest(uuid.uuid4().hex, budgets=budgets, estimate_nanos=cost)


class Gateway:
    """An enforcer whose counters are seeded from a real ledger, and the calls it bills
    written to that ledger (as the gateway's recorder does)."""

    def __init__(self, engine: AsyncEngine, make_enforcer: Callable[..., Enforcer], clock: FakeClock) -> None:
        self.engine = engine
        self.clock = clock

        async def loader(budget: BudgetLimit, period: Period) -> int:
            return await period_spend(engine, budget, period, tz="UTC", served_by=lambda _: [])

        self.enforcer = make_enforcer(loader=loader)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def call(self, budgets: list[BudgetLimit], cost: int) -> None:
        """One call of ``cost``, admitted (or refused: BudgetExceeded), settled and recorded."""
        request = req(budgets, cost)
        ticket = await self.enforcer.admit(request)
        await self.enforcer.settle(ticket, cost)
        event = SpendEvent(
            event_id=request.request_id,
            occurred_at=self.now(),
            cost_nanos=cost,
            api_key=KEY_ID,
            model="gpt-4o",
        )
        await LedgerRepository(self.engine).write_batch([event])
        self.clock.advance(1)

    async def set_spend(self, main: BudgetLimit, to_nanos: int) -> None:
        """``/key/update`` with ``spend``: the adjustment, then the main window's counter set."""
        at = self.now()
        period = main.period_at(at)
        async with self.engine.begin() as conn:
            before = await range_spend(conn, "key", KEY_ID, period.start, at)
            adjustment = KeyAdjustment(
                key_id=KEY_ID,
                at=at,
                by="master_key",
                from_nanos=before,
                to_nanos=to_nanos,
                budget_duration=main.window.name,
                period_start=period.start,
            )
            await record_key_adjustment(conn, adjustment)
        await self.enforcer.set_from_ledger([main])
        self.clock.advance(1)

    async def spend(self, budget: BudgetLimit) -> int:
        [state] = await explain(self.enforcer, req([budget], 0))
        return state.spend_nanos


@all_storages
class TestKeySpendReset:
    async def test_a_reset_of_the_daily_budget_keeps_the_monthly_cap(
        self,
        engine: AsyncEngine,
        storage: Storage,
        make_enforcer: Callable[..., Enforcer],
        clock: FakeClock,
    ) -> None:
        clock.set(NOW)
        gateway = Gateway(engine, make_enforcer, clock)
        daily = BudgetLimit.of(KEY, "1d", USD, main=True)
        monthly = BudgetLimit.of(KEY, "1mo", 100 * CENT + 50 * CENT)
        budgets = [daily, monthly]
        clock.set(NOW - timedelta(days=3))
        await gateway.call(budgets, 60 * CENT)  # earlier in the month
        clock.set(NOW)
        for _ in range(2):
            await gateway.call(budgets, 40 * CENT)
        assert (await gateway.spend(daily), await gateway.spend(monthly)) == (80 * CENT, 140 * CENT)
        with pytest.raises(BudgetExceeded):
            await gateway.call(budgets, 30 * CENT)  # the daily budget is full

        await gateway.set_spend(daily, 0)
        assert (await gateway.spend(daily), await gateway.spend(monthly)) == (0, 140 * CENT)
        with pytest.raises(BudgetExceeded) as refused:
            await gateway.call(budgets, 20 * CENT)  # 140 + 20 would cross the monthly cap
        assert refused.value.window == "1mo" and refused.value.spend_nanos == 140 * CENT
        await gateway.call(budgets, 10 * CENT)  # room for this one in both
        assert (await gateway.spend(daily), await gateway.spend(monthly)) == (10 * CENT, 150 * CENT)

        # Rebuilt from the ledger (a restart, a Redis flush): the same values, the same refusal.
        await storage.clear()
        cold = Gateway(engine, make_enforcer, clock)
        assert (await cold.spend(daily), await cold.spend(monthly)) == (10 * CENT, 150 * CENT)
        with pytest.raises(BudgetExceeded) as again:
            await cold.call(budgets, CENT)
        assert again.value.window == "1mo"

    async def test_a_main_window_and_a_window_of_the_same_duration_count_apart(
        self,
        engine: AsyncEngine,
        storage: Storage,
        make_enforcer: Callable[..., Enforcer],
        clock: FakeClock,
    ) -> None:
        """``budget_duration: 1mo`` and a ``budget_limits`` window of ``1mo``: two counters,
        so a reset of the first leaves the second at what was spent."""
        clock.set(NOW)
        gateway = Gateway(engine, make_enforcer, clock)
        main = BudgetLimit.of(KEY, "1mo", USD, main=True)
        cap = BudgetLimit.of(KEY, "1mo", 50 * CENT)
        await gateway.call([main, cap], 30 * CENT)
        await gateway.set_spend(main, 0)
        assert (await gateway.spend(main), await gateway.spend(cap)) == (0, 30 * CENT)
        with pytest.raises(BudgetExceeded) as refused:
            await gateway.call([main, cap], 30 * CENT)
        assert refused.value.limit_nanos == 50 * CENT
        # Setting every window of the key from the ledger (as before) leaves the cap real too.
        await gateway.enforcer.set_from_ledger([main, cap])
        assert (await gateway.spend(main), await gateway.spend(cap)) == (0, 30 * CENT)


def test_only_a_keys_other_windows_have_counters_apart() -> None:
    keys, month = KeySpace("sg"), BudgetLimit.of(KEY, "1mo", USD).window
    assert keys.budget(KEY, month, "p", main=True) != keys.budget(KEY, month, "p", main=False)
    team = Scope("team", "t")
    assert keys.budget(team, month, "p", main=True) == keys.budget(team, month, "p", main=False)
    assert BudgetLimit.of(KEY, "1mo", USD, main=True).counts_adjustments
    assert not BudgetLimit.of(KEY, "1mo", USD).counts_adjustments
    assert not BudgetLimit.of(team, "1mo", USD, main=True).counts_adjustments

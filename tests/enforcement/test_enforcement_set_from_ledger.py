"""Enforcer.set_from_ledger: after an administrator set a key's spend in the ledger, its
counters are **set** to the ledger's value (never added to), keep the reservations of calls
in flight (a settle after it adds to the value set), and a counter that does not exist is
left to be seeded — on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.core.periods import Period
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, Scope, explain

KEY = Scope("key", "k-set")


def req(budgets: list[BudgetLimit], cost: int = CENT) -> EnforcementRequest:
    return EnforcementRequest(uuid.uuid4().hex, budgets=budgets, estimate_nanos=cost)


class Ledger:
    """A seed loader whose answer the test sets: the ledger's spend of the key."""

    def __init__(self, nanos: int) -> None:
        self.nanos = nanos

    async def __call__(self, budget: BudgetLimit, period: Period) -> int:
        return self.nanos


async def state(enforcer: Enforcer, budget: BudgetLimit) -> tuple[int, int]:
    [s] = await explain(enforcer, req([budget], 0))
    return s.spend_nanos, s.reserved_nanos


@all_storages
class TestSetFromLedger:
    async def test_a_reset_keeps_the_calls_in_flight(self, make_enforcer: Callable[..., Enforcer]) -> None:
        ledger = Ledger(50 * CENT)
        enforcer = make_enforcer(loader=ledger)
        daily = BudgetLimit.of(KEY, "1d", USD)
        settled = await enforcer.admit(req([daily], 10 * CENT))
        await enforcer.settle(settled, 10 * CENT)
        in_flight = await enforcer.admit(req([daily], 20 * CENT))
        assert await state(enforcer, daily) == (60 * CENT, 20 * CENT)

        ledger.nanos = 0  # the adjustment is in the ledger
        assert await enforcer.set_from_ledger([daily]) == 1
        assert await state(enforcer, daily) == (0, 20 * CENT)
        assert await enforcer.set_from_ledger([daily]) == 1  # again: the same value, nothing added
        assert await state(enforcer, daily) == (0, 20 * CENT)
        await enforcer.settle(in_flight, 15 * CENT)
        assert await state(enforcer, daily) == (15 * CENT, 0)

    async def test_a_full_budget_admits_again_once_set(self, make_enforcer: Callable[..., Enforcer]) -> None:
        ledger = Ledger(USD)
        enforcer = make_enforcer(loader=ledger)
        lifetime = BudgetLimit.of(KEY, "lifetime", USD)
        assert await state(enforcer, lifetime) == (USD, 0)
        ledger.nanos = 0
        await enforcer.set_from_ledger([lifetime])
        ticket = await enforcer.admit(req([lifetime], 30 * CENT))
        await enforcer.settle(ticket, 30 * CENT)
        assert await state(enforcer, lifetime) == (30 * CENT, 0)

    async def test_a_rolling_window_holds_the_ledger_value_in_one_bucket(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        ledger = Ledger(0)
        enforcer = make_enforcer(loader=ledger)
        week = BudgetLimit.of(KEY, "rolling:7d", USD)
        for _ in range(3):
            ticket = await enforcer.admit(req([week]))
            await enforcer.settle(ticket, 10 * CENT)
            clock.advance(86400)
        assert await state(enforcer, week) == (30 * CENT, 0)
        ledger.nanos = 5 * CENT
        assert await enforcer.set_from_ledger([week]) == 1
        assert await state(enforcer, week) == (5 * CENT, 0)
        clock.advance(6 * 86400)  # the old buckets would have left by now; the set value is still in
        assert await state(enforcer, week) == (5 * CENT, 0)

    async def test_a_counter_not_there_is_left_to_be_seeded(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        ledger = Ledger(7 * CENT)
        enforcer = make_enforcer(loader=ledger)
        daily = BudgetLimit.of(KEY, "1d", USD)
        assert await enforcer.set_from_ledger([daily]) == 0
        assert await state(enforcer, daily) == (7 * CENT, 0)  # seeded from the ledger when read

    async def test_without_a_ledger_nothing_is_set(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        daily = BudgetLimit.of(KEY, "1d", USD)
        ticket = await enforcer.admit(req([daily]))
        await enforcer.settle(ticket, CENT)
        assert await enforcer.set_from_ledger([daily]) == 0
        assert await state(enforcer, daily) == (CENT, 0)

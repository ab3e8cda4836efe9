"""In-process storage: the settled-id (done marker) memory is bounded by count, not only time.

A gateway serving more than ``max_done`` requests inside ``idempotency_seconds`` (1 h by
default) must not keep one marker per request: its memory would grow with the traffic
(issue #10, item 8: +79 % RSS over 200,000 budgeted requests).
"""

from __future__ import annotations

import pytest

from counter_backends import CENT, USD, FakeClock
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, MemoryStorage, Reservation, Scope

DEFAULT_MAX_DONE = 10_000  # documented in docs/enforcement.md

BUDGET = BudgetLimit.of(Scope("key", "k"), "30d", 10**6 * USD)


async def _spend(storage: MemoryStorage, ticket: Reservation, clock: FakeClock) -> int:
    (state,), _ = await storage.read(int(clock() * 1000), ticket.budget_ops, ())
    assert state is not None
    return state.spend


async def _settled(enforcer: Enforcer, clock: FakeClock, ids: range) -> list[Reservation]:
    tickets = []
    for i in ids:
        clock.advance(0.001)  # well inside the idempotency window: nothing expires by time
        ticket = await enforcer.admit(EnforcementRequest(f"r{i}", [BUDGET], [], CENT))
        assert await enforcer.settle(ticket, CENT)
        tickets.append(ticket)
    return tickets


async def test_default_cap_bounds_markers_within_the_idempotency_window() -> None:
    storage = MemoryStorage()
    clock = FakeClock()
    enforcer = Enforcer(storage, clock=clock)  # idempotency_seconds: 1 h
    await _settled(enforcer, clock, range(DEFAULT_MAX_DONE + 5_000))
    assert len(storage._done) == DEFAULT_MAX_DONE


async def test_marker_memory_stays_flat_past_the_cap() -> None:
    storage = MemoryStorage(max_done=1_000)
    clock = FakeClock()
    enforcer = Enforcer(storage, clock=clock)
    await _settled(enforcer, clock, range(1_000))
    assert len(storage._done) == 1_000
    await _settled(enforcer, clock, range(1_000, 20_000))
    assert len(storage._done) == 1_000
    # The ones kept are the newest, in settle order.
    assert next(iter(storage._done)).endswith("r19000")


async def test_recent_ids_stay_idempotent_after_evictions() -> None:
    storage = MemoryStorage(max_done=100)
    clock = FakeClock()
    enforcer = Enforcer(storage, clock=clock)
    tickets = await _settled(enforcer, clock, range(1_000))
    spend = await _spend(storage, tickets[0], clock)
    assert spend == 1_000 * CENT
    for ticket in tickets[-100:]:  # the last `max_done` settlements: a retry counts nothing
        assert not await enforcer.settle(ticket, CENT)
        assert not await enforcer.release(ticket)
    assert await _spend(storage, tickets[0], clock) == spend


async def test_settle_after_release_makes_the_marker_newest() -> None:
    storage = MemoryStorage(max_done=3)
    clock = FakeClock()
    enforcer = Enforcer(storage, clock=clock)
    first = await enforcer.admit(EnforcementRequest("a", [BUDGET], [], CENT))
    assert await enforcer.release(first)
    await _settled(enforcer, clock, range(2))  # markers: a (released), r0, r1
    assert await enforcer.settle(first, CENT)  # a settle after a release still charges
    await _settled(enforcer, clock, range(2, 3))  # evicts r0, the oldest, not a
    assert not await enforcer.settle(first, CENT)
    assert await _spend(storage, first, clock) == 4 * CENT


def test_max_done_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_done"):
        MemoryStorage(max_done=0)

"""In-process storage only: memory stays bounded as time passes."""

from __future__ import annotations

from counter_backends import CENT, USD, FakeClock
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, MemoryStorage, RateLimit, Scope


async def test_expired_keys_and_done_markers_are_swept() -> None:
    storage = MemoryStorage()
    clock = FakeClock()
    enforcer = Enforcer(storage, clock=clock, idempotency_seconds=60, lease_seconds=30)
    budget = BudgetLimit.of(Scope("key", "k"), "1m", USD)
    rate = RateLimit(Scope("key", "k"), "requests", 10**6, 1)
    for i in range(5000):
        clock.advance(1)
        ticket = await enforcer.admit(EnforcementRequest(f"r{i}", [budget], [rate], CENT))
        assert await enforcer.settle(ticket, CENT)
    # 1-minute periods live two periods and an hour; markers a minute: a few hundred keys
    # at most, not one per request.
    stores = (storage._counters, storage._leases, storage._sliding, storage._slots, storage._done)
    assert sum(len(store) for store in stores) < 1200


async def test_renew_after_sweeps() -> None:
    # renew finds a lease set by its lease key. The lease key can expire before its counter
    # (a settle extends only the counter); a sweep then forgets it, and the next
    # reservation in that counter must make it findable again.
    storage = MemoryStorage()
    clock = FakeClock()
    enforcer = Enforcer(storage, clock=clock, lease_seconds=30)
    budget = BudgetLimit.of(Scope("key", "k"), "rolling:10s", USD)  # keys live 10 s + 1 s + 1 h
    first = await enforcer.admit(EnforcementRequest("first", [budget], [], CENT))
    clock.advance(100)
    assert await enforcer.settle(first, CENT)
    clock.advance(3550)  # the lease key has expired, the counter (extended by the settle) has not
    storage._sweep(int(clock() * 1000))
    assert not storage._leases
    second = await enforcer.admit(EnforcementRequest("second", [budget], [], CENT))
    assert await enforcer.renew(second) == 1
    assert await enforcer.renew(first) == 0
    assert await enforcer.settle(second, CENT)

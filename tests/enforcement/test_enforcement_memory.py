"""In-process storage only: memory stays bounded as time passes."""

from __future__ import annotations

from enforcement_backends import CENT, USD, FakeClock

from spendgate.enforcement import Admission, BudgetLimit, EnforcementRequest, MemoryStorage, RateLimit, Scope


async def test_expired_keys_and_done_markers_are_swept() -> None:
    storage = MemoryStorage()
    clock = FakeClock()
    admission = Admission(storage, clock=clock, idempotency_seconds=60, lease_seconds=30)
    budget = BudgetLimit.of(Scope("key", "k"), "1m", USD)
    rate = RateLimit(Scope("key", "k"), "requests", 10**6, 1)
    for i in range(5000):
        clock.advance(1)
        ticket = await admission.admit(EnforcementRequest(f"r{i}", [budget], [rate], CENT))
        assert await admission.settle(ticket, CENT)
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
    admission = Admission(storage, clock=clock, lease_seconds=30)
    budget = BudgetLimit.of(Scope("key", "k"), "rolling:10s", USD)  # keys live 10 s + 1 s + 1 h
    first = await admission.admit(EnforcementRequest("first", [budget], [], CENT))
    clock.advance(100)
    assert await admission.settle(first, CENT)
    clock.advance(3550)  # the lease key has expired, the counter (extended by the settle) has not
    storage._sweep(int(clock() * 1000))
    assert not storage._leases
    second = await admission.admit(EnforcementRequest("second", [budget], [], CENT))
    assert await admission.renew(second) == 1
    assert await admission.renew(first) == 0
    assert await admission.settle(second, CENT)

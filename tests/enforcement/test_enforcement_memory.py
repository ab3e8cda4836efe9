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
    assert len(storage._data) + len(storage._done) < 1200

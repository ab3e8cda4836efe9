"""The Lua scripts behave exactly like the in-process specification.

A hypothesis state machine drives the same random operations (admit, with the enforcer's
lease or its own; settle, release and renew, of the reservation or of its JSON copy; time
passing) against MemoryStorage and RedisStorage and compares every outcome and
every counter after each step.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from counter_backends import CENT, REDIS_URL, SKIP_REDIS, FakeClock, unique_prefix
from spendgate.core.periods import Period
from spendgate.enforcement import (
    BudgetLimit,
    EnforcementRequest,
    Enforcer,
    MemoryStorage,
    Mode,
    RateLimit,
    Reservation,
    Scope,
)
from spendgate.errors import LimitExceeded

pytestmark = pytest.mark.redis

KEY, TEAM = Scope("key", "k"), Scope("team", "t")
BUDGETS = [
    BudgetLimit.of(KEY, "1m", 30 * CENT),
    BudgetLimit.of(TEAM, "rolling:2m", 50 * CENT, soft_nanos=20 * CENT),
    BudgetLimit.of(Scope("user", "u"), "1h", None, soft_nanos=10 * CENT),
    BudgetLimit.of(Scope("tag", "x"), "rolling:5s", 40 * CENT),  # fewer buckets than fields
]
LIMITS = [
    RateLimit(KEY, "requests", 6, 10),
    RateLimit(TEAM, "tokens", 1000, 20),
    RateLimit(KEY, "parallel", 3),
]


def outcome(result: Any) -> Any:
    if isinstance(result, LimitExceeded):
        return type(result).__name__, str(result)
    if isinstance(result, Reservation):
        return result.reserved_nanos, result.budgets, result.rates, result.soft_crossed
    return result


class Equivalence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from spendgate.stores.counters.redis import RedisStorage

        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock(1_800_000_000.0)
        prefix = unique_prefix()
        self.redis = RedisStorage.from_url(REDIS_URL, prefix=prefix)
        self.memory = MemoryStorage(prefix=prefix)
        self.sides: list[Enforcer] = []
        self.tickets: list[tuple[Reservation, Reservation]] = []
        self.n = 0

    def run(self, make: Any) -> list[Any]:
        async def both() -> list[Any]:
            out = []
            for side in self.sides:
                try:
                    out.append(await make(side))
                except LimitExceeded as exc:
                    out.append(exc)
            return out

        return self.loop.run_until_complete(both())

    @initialize(mode=st.sampled_from(["strict", "check_only"]), seeded=st.booleans())
    def start(self, mode: Mode, seeded: bool) -> None:
        async def loader(budget: BudgetLimit, period: Period) -> int:
            return 5 * CENT

        self.sides = [
            Enforcer(s, clock=self.clock, lease_seconds=30, mode=mode, loader=loader if seeded else None)
            for s in (self.memory, self.redis)
        ]

    @rule(
        budgets=st.sets(st.sampled_from(range(len(BUDGETS)))),
        limits=st.sets(st.sampled_from(range(len(LIMITS)))),
        cost=st.integers(0, 25 * CENT),
        tokens=st.integers(0, 600),
        lease=st.sampled_from([None, None, 10.0, 86_400.0]),
    )
    def admit(self, budgets: set[int], limits: set[int], cost: int, tokens: int, lease: float | None) -> None:
        self.n += 1
        request = EnforcementRequest(
            f"r{self.n}",
            [BUDGETS[i] for i in sorted(budgets)],
            [LIMITS[i] for i in sorted(limits)],
            cost,
            tokens,
        )
        mem, red = self.run(lambda side: side.admit(request, lease_seconds=lease))
        assert outcome(mem) == outcome(red)
        if isinstance(mem, Reservation):
            self.tickets.append((mem, red))

    @precondition(lambda self: self.tickets)
    @rule(
        data=st.data(),
        cost=st.integers(0, 30 * CENT),
        tokens=st.integers(0, 900),
        again=st.booleans(),
        stored=st.booleans(),
    )
    def settle(self, data: st.DataObject, cost: int, tokens: int, again: bool, stored: bool) -> None:
        pair = data.draw(st.sampled_from(self.tickets))
        if not again:
            self.tickets.remove(pair)
        if stored:  # as another instance settles it, from a database row
            pair = tuple(Reservation.from_json(t.to_json()) for t in pair)  # type: ignore[assignment]
        it = iter(pair)
        results = self.run(lambda side: side.settle(next(it), cost, tokens))
        assert results[0] == results[1]

    @precondition(lambda self: self.tickets)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.tickets))
        it = iter(pair)
        results = self.run(lambda side: side.release(next(it)))
        assert results[0] == results[1]

    @precondition(lambda self: self.tickets)
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.tickets))
        it = iter(pair)
        results = self.run(lambda side: side.renew(next(it)))
        assert results[0] == results[1]

    @rule(ms=st.integers(0, 40_000))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms / 1000)

    @invariant()
    def same_counters(self) -> None:
        probe = EnforcementRequest("probe", BUDGETS, LIMITS, CENT, 10)

        async def read(side: Enforcer) -> Any:
            reading = await side.read(probe)
            return reading.budget_states, reading.rate_states

        mem, red = self.run(read)
        assert mem == red

    def teardown(self) -> None:
        async def close() -> None:
            await self.redis.clear()
            await self.redis.close()

        try:
            self.loop.run_until_complete(close())
        finally:
            self.loop.close()


def test_memory_and_redis_agree() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if SKIP_REDIS:
            pytest.skip("SPENDGATE_TEST_SKIP_REDIS=1")
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc!r}); see tests/counter_backends.py",
            pytrace=False,
        )
    machine = settings(
        max_examples=40, stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck)
    )(Equivalence)
    machine.TestCase().runTest()

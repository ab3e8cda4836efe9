"""Rate limits: sliding windows for requests and tokens, and parallel slots."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, RateLimit, Reservation, Scope
from spendgate.errors import BudgetExceeded, RateLimited
from spendgate.stores.counters.base import RateState

KEY = Scope("key", "k-1")


def req(
    limits: list[RateLimit], tokens: int = 0, budgets: list[BudgetLimit] | None = None
) -> EnforcementRequest:
    return EnforcementRequest(uuid.uuid4().hex, budgets or [], limits, CENT, tokens)


async def rate_state(enforcer: Enforcer, limit: RateLimit) -> RateState:
    [s] = (await enforcer.read(EnforcementRequest("probe", rate_limits=[limit]))).rate_states
    return s


@all_storages
class TestRequestRate:
    async def test_sliding_window_accuracy_at_three_times_the_rate(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        rpm = RateLimit(KEY, "requests", 20, window_seconds=2)
        clock.t = 1_800_000_000.0  # a window boundary
        accepted = 0
        for i in range(300):  # 30 requests per second for 10 s = 3 × 20 per 2 s
            clock.t = 1_800_000_000.0 + i / 30
            try:
                ticket = await enforcer.admit(req([rpm]))
            except RateLimited as exc:
                assert exc.retry_after is not None and 0 < exc.retry_after <= 4
                assert exc.kind == "requests" and exc.limit == 20
                continue
            accepted += 1
            await enforcer.settle(ticket, 0)
        assert abs(accepted - 100) <= 5, accepted

    async def test_retry_after_is_right(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        rpm = RateLimit(KEY, "requests", 10, window_seconds=10)
        clock.t = 1_800_000_000.0
        for _ in range(10):
            await enforcer.admit(req([rpm]))
        with pytest.raises(RateLimited) as info:
            await enforcer.admit(req([rpm]))
        retry = info.value.retry_after
        assert retry is not None
        # The window rolls at +10 s; one request's room appears when 1/10 of it has passed.
        assert retry == pytest.approx(11.0, abs=0.01)
        clock.advance(retry - 0.02)
        with pytest.raises(RateLimited):
            await enforcer.admit(req([rpm]))
        clock.advance(0.02)
        await enforcer.admit(req([rpm]))

    async def test_a_rejected_request_consumes_nothing(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        rpm = RateLimit(KEY, "requests", 100, window_seconds=60)
        tpm = RateLimit(KEY, "tokens", 1000, window_seconds=60)
        par = RateLimit(KEY, "parallel", 5)
        budget = BudgetLimit.of(KEY, "1d", 5 * CENT)
        await enforcer.admit(req([rpm, tpm, par], 600, [budget]))
        before = [await rate_state(enforcer, r) for r in (rpm, tpm, par)]
        with pytest.raises(RateLimited):  # tokens: 600 + 600 > 1000
            await enforcer.admit(req([rpm, tpm, par], 600, [budget]))
        with pytest.raises(BudgetExceeded):  # budget fails first: nothing is taken either
            await enforcer.admit(EnforcementRequest("big", [budget], [rpm, tpm, par], 5 * CENT, 10))
        assert [await rate_state(enforcer, r) for r in (rpm, tpm, par)] == before

    async def test_zero_and_unlimited(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        with pytest.raises(RateLimited) as info:
            await enforcer.admit(req([RateLimit(KEY, "requests", 0)]))
        assert info.value.retry_after is None
        ticket = await enforcer.admit(req([RateLimit(KEY, "requests", None)]))
        assert ticket.rates == ()


@all_storages
class TestTokens:
    async def test_tokens_are_reserved_then_reconciled(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        clock.t = 1_800_000_000.0
        tpm = RateLimit(KEY, "tokens", 1000, window_seconds=60)
        t1 = await enforcer.admit(req([tpm], 700))
        assert (await rate_state(enforcer, tpm)).current == 700
        with pytest.raises(RateLimited):
            await enforcer.admit(req([tpm], 400))
        await enforcer.settle(t1, 0, real_tokens=250)
        assert (await rate_state(enforcer, tpm)).current == 250
        t2 = await enforcer.admit(req([tpm], 400))
        await enforcer.release(t2)  # nothing used: its tokens come back
        assert (await rate_state(enforcer, tpm)).current == 250
        await enforcer.settle(t1, 0, real_tokens=999)  # idempotent
        assert (await rate_state(enforcer, tpm)).current == 250

    async def test_reconciling_in_the_next_window(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        clock.t = 1_800_000_000.0
        tpm = RateLimit(KEY, "tokens", 1000, window_seconds=60)
        ticket = await enforcer.admit(req([tpm], 800))
        clock.advance(61)
        await enforcer.settle(ticket, 0, real_tokens=100)
        s = await rate_state(enforcer, tpm)
        assert (s.previous, s.current) == (100, 0)

    async def test_a_request_larger_than_the_limit_never_passes(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer()
        with pytest.raises(RateLimited) as info:
            await enforcer.admit(req([RateLimit(KEY, "tokens", 100)], 101))
        assert info.value.retry_after is None


@all_storages
class TestParallel:
    async def test_slots_never_exceed_the_limit_and_free_on_cancel(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer()
        par = RateLimit(KEY, "parallel", 5)
        in_flight = peak = 0
        gate = asyncio.Event()

        async def call() -> str:
            nonlocal in_flight, peak
            try:
                ticket = await enforcer.admit(req([par]))
            except RateLimited as exc:
                assert exc.retry_after is not None
                return "limited"
            try:
                in_flight += 1
                peak = max(peak, in_flight)
                await gate.wait()
                return "done"
            finally:
                in_flight -= 1
                await asyncio.shield(enforcer.release(ticket))

        tasks = [asyncio.create_task(call()) for _ in range(20)]
        for _ in range(1000):  # until every call is either in flight or refused
            await asyncio.sleep(0.01)
            if in_flight + sum(t.done() for t in tasks) == 20:
                break
        assert peak == 5 and in_flight == 5
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results.count("limited") == 15
        assert (await rate_state(enforcer, par)).current == 0
        tickets = [await enforcer.admit(req([par])) for _ in range(5)]  # all 5 usable again
        with pytest.raises(RateLimited):
            await enforcer.admit(req([par]))
        await enforcer.settle(tickets[0], 0)
        await enforcer.admit(req([par]))

    async def test_a_dead_instance_slots_heal_by_lease(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer(lease_seconds=30)
        par = RateLimit(KEY, "parallel", 2)
        held: list[Reservation] = [await enforcer.admit(req([par])) for _ in range(2)]
        with pytest.raises(RateLimited):
            await enforcer.admit(req([par]))
        clock.advance(31)
        await enforcer.admit(req([par]))
        assert len(held) == 2

    async def test_budget_and_rates_in_one_admission(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        limits = [
            RateLimit(KEY, "requests", 10, 60),
            RateLimit(Scope("team", "t"), "requests", 3, 60),
            RateLimit(KEY, "tokens", 10_000, 60),
            RateLimit(KEY, "parallel", 10),
        ]
        budget = BudgetLimit.of(KEY, "1d", USD)
        for _ in range(3):
            await enforcer.admit(req(limits, 100, [budget]))
        with pytest.raises(RateLimited) as info:
            await enforcer.admit(req(limits, 100, [budget]))
        assert info.value.scope == "team:t"

"""Budgets: reservation, settlement, release, leases, boundaries — on every backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.core.periods import Period
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, Scope, explain
from spendgate.errors import BudgetExceeded, ConfigurationError, StorageError

KEY = Scope("key", "k-1")
TEAM = Scope("team", "t-1")


def req(budgets: list[BudgetLimit], cost: int = CENT, rid: str | None = None) -> EnforcementRequest:
    return EnforcementRequest(rid or uuid.uuid4().hex, budgets=budgets, estimate_nanos=cost)


async def state(enforcer: Enforcer, budget: BudgetLimit) -> tuple[int, int]:
    [s] = await explain(enforcer, req([budget], 0))
    return s.spend_nanos, s.reserved_nanos


@all_storages
class TestReserveSettle:
    async def test_300_concurrent_requests_against_a_one_dollar_budget(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer()
        daily = BudgetLimit.of(KEY, "24h", USD)

        async def one() -> bool:
            try:
                ticket = await enforcer.admit(req([daily]))
            except BudgetExceeded as exc:
                assert exc.scope == "key:k-1" and exc.limit_nanos == USD
                return False
            await asyncio.sleep(0)
            assert await enforcer.settle(ticket, CENT)
            return True

        results = await asyncio.gather(*(one() for _ in range(300)))
        assert sum(results) == 100
        assert await state(enforcer, daily) == (USD, 0)

    async def test_a_team_budget_shared_by_ten_keys(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        team = BudgetLimit.of(TEAM, "1d", USD)
        keys = [BudgetLimit.of(Scope("key", f"k{i}"), "1d", 10 * USD) for i in range(10)]

        async def one(i: int) -> bool:
            try:
                ticket = await enforcer.admit(req([keys[i % 10], team]))
            except BudgetExceeded as exc:
                assert exc.scope == "team:t-1"
                return False
            await asyncio.sleep(0)
            await enforcer.settle(ticket, CENT)
            return True

        results = await asyncio.gather(*(one(i) for i in range(300)))
        assert sum(results) == 100
        assert await state(enforcer, team) == (USD, 0)
        assert sum([(await state(enforcer, k))[0] for k in keys]) == USD

    async def test_all_or_nothing_a_failing_team_leaves_the_key_untouched(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer()
        key = BudgetLimit.of(KEY, "1d", 10 * USD)
        team = BudgetLimit.of(TEAM, "1d", 5 * CENT)
        ticket = await enforcer.admit(req([team], 5 * CENT))
        await enforcer.settle(ticket, 5 * CENT)
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(req([key, team]))
        assert info.value.scope == "team:t-1"
        assert await state(enforcer, key) == (0, 0)
        assert await state(enforcer, team) == (5 * CENT, 0)

    async def test_strictest_failing_budget_is_named(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        key = BudgetLimit.of(KEY, "1d", USD)
        team = BudgetLimit.of(TEAM, "1mo", 2 * USD)
        t = await enforcer.admit(req([key], 99 * CENT))
        await enforcer.settle(t, 99 * CENT)
        t = await enforcer.admit(req([team], 199 * CENT + CENT // 2))
        await enforcer.settle(t, 199 * CENT + CENT // 2)
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(req([key, team], 2 * CENT))
        err = info.value
        assert (err.scope, err.window) == ("team:t-1", "1mo")
        assert err.spend_nanos == 199 * CENT + CENT // 2 and err.limit_nanos == 2 * USD
        assert err.reset_at is not None and err.reset_at.day == 1
        assert err.retry_after is not None and err.retry_after > 0
        assert "team:t-1" in str(err) and "$2.00" in str(err)

    async def test_settle_is_idempotent(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", USD)
        ticket = await enforcer.admit(req([b], 10 * CENT))
        assert await state(enforcer, b) == (0, 10 * CENT)
        assert await enforcer.settle(ticket, 3 * CENT) is True
        assert await enforcer.settle(ticket, 3 * CENT) is False
        assert await enforcer.release(ticket) is False
        assert await state(enforcer, b) == (3 * CENT, 0)

    async def test_release_frees_and_is_idempotent(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", 10 * CENT)
        ticket = await enforcer.admit(req([b], 10 * CENT))
        with pytest.raises(BudgetExceeded):
            await enforcer.admit(req([b], CENT))
        assert await enforcer.release(ticket) is True
        assert await enforcer.release(ticket) is False
        assert await state(enforcer, b) == (0, 0)
        # A settle after a release still charges the real cost, once.
        assert await enforcer.settle(ticket, 2 * CENT) is True
        assert await enforcer.settle(ticket, 2 * CENT) is False
        assert await state(enforcer, b) == (2 * CENT, 0)

    async def test_an_expired_lease_heals_and_a_late_settle_charges_once(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer(lease_seconds=60)
        b = BudgetLimit.of(KEY, "1d", 10 * CENT)
        crashed = await enforcer.admit(req([b], 10 * CENT))
        with pytest.raises(BudgetExceeded):
            await enforcer.admit(req([b], CENT))
        clock.advance(61)
        assert await state(enforcer, b) == (0, 0)
        other = await enforcer.admit(req([b], 5 * CENT))
        assert await enforcer.settle(crashed, 4 * CENT) is True
        assert await enforcer.settle(crashed, 4 * CENT) is False
        assert await state(enforcer, b) == (4 * CENT, 5 * CENT)
        await enforcer.settle(other, 5 * CENT)
        assert await state(enforcer, b) == (9 * CENT, 0)

    async def test_renew_extends_the_lease(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer(lease_seconds=60)
        b = BudgetLimit.of(KEY, "1d", USD)
        ticket = await enforcer.admit(req([b], 10 * CENT))
        clock.advance(50)
        assert await enforcer.renew(ticket) == 1
        clock.advance(50)
        assert await state(enforcer, b) == (0, 10 * CENT)
        clock.advance(11)
        assert await state(enforcer, b) == (0, 0)

    @pytest.mark.parametrize("rid", ["with spaces and - dashes", "team:user%41", "ünïcode 請求", "-"])
    async def test_any_request_id(self, make_enforcer: Callable[..., Enforcer], rid: str) -> None:
        # (Redis sends the numbers of a call joined by spaces; the request id travels apart.)
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", USD)
        ticket = await enforcer.admit(req([b], 10 * CENT, rid=rid))
        assert await state(enforcer, b) == (0, 10 * CENT)
        assert await enforcer.renew(ticket) == 1
        assert await enforcer.settle(ticket, 3 * CENT) is True
        assert await enforcer.settle(ticket, 3 * CENT) is False
        assert await enforcer.release(ticket) is False
        assert await state(enforcer, b) == (3 * CENT, 0)


@all_storages
class TestLimits:
    async def test_the_boundary_is_allowed(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", USD)
        ticket = await enforcer.admit(req([b], USD))  # spend + reserved + estimate == max
        with pytest.raises(BudgetExceeded):
            await enforcer.admit(req([b], 1))
        await enforcer.settle(ticket, USD)
        assert await state(enforcer, b) == (USD, 0)

    async def test_zero_allows_nothing_and_none_is_unlimited(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer()
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(req([BudgetLimit.of(KEY, "1d", 0)], 0))
        assert info.value.limit_nanos == 0 and info.value.retry_after is None
        unlimited = BudgetLimit.of(KEY, "1d", None)
        ticket = await enforcer.admit(req([unlimited], 10**6 * USD))
        assert ticket.budgets == ()

    async def test_a_request_bigger_than_the_budget_can_never_pass(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer()
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(req([BudgetLimit.of(KEY, "1d", USD)], 2 * USD))
        assert info.value.retry_after is None

    async def test_soft_budget_reports_but_never_blocks(self, make_enforcer: Callable[..., Enforcer]) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", USD, soft_nanos=50 * CENT)
        first = await enforcer.admit(req([b], 40 * CENT))
        assert first.soft_crossed == ()
        await enforcer.settle(first, 40 * CENT)
        second = await enforcer.admit(req([b], 20 * CENT))
        [crossing] = second.soft_crossed
        assert crossing.first and crossing.spend_nanos == 60 * CENT
        await enforcer.settle(second, 20 * CENT)
        third = await enforcer.admit(req([b], CENT))
        assert [c.first for c in third.soft_crossed] == [False]
        soft_only = BudgetLimit.of(TEAM, "1d", None, soft_nanos=0)
        assert (await enforcer.admit(req([soft_only], CENT))).soft_crossed[0].first is False

    async def test_temporary_increase_until_expiry(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        now = clock()
        from spendgate.enforcement.limits import utc_from_ms

        expiry = utc_from_ms(int((now + 3600) * 1000))
        b = BudgetLimit.of(KEY, "1mo", USD, temp_increase_nanos=USD, temp_expiry=expiry)
        t = await enforcer.admit(req([b], 150 * CENT))
        await enforcer.settle(t, 150 * CENT)
        clock.advance(3601)
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(req([b], CENT))
        assert info.value.limit_nanos == USD

    async def test_check_only_compares_spend_and_can_be_raced(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        enforcer = make_enforcer(mode="check_only")
        b = BudgetLimit.of(KEY, "1d", USD)
        tickets = await asyncio.gather(*(enforcer.admit(req([b], 50 * CENT)) for _ in range(5)))
        assert all(t.reserved_nanos == 0 for t in tickets)
        for t in tickets:
            await enforcer.settle(t, 50 * CENT)
        assert await state(enforcer, b) == (250 * CENT, 0)  # raced past: documented
        with pytest.raises(BudgetExceeded):
            await enforcer.admit(req([b], 0))

    async def test_cold_counters_are_set_from_the_ledger_once(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        calls: list[tuple[BudgetLimit, Period]] = []

        async def loader(budget: BudgetLimit, period: Period) -> int:
            calls.append((budget, period))
            await asyncio.sleep(0)
            return 90 * CENT

        enforcer = make_enforcer(loader=loader)
        b = BudgetLimit.of(KEY, "1d", USD)
        results = await asyncio.gather(
            *(enforcer.admit(req([b], 5 * CENT)) for _ in range(5)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 2
        assert await state(enforcer, b) == (90 * CENT, 10 * CENT)
        assert len(calls) == 1 and calls[0][1].end - calls[0][1].start == timedelta(days=1)
        # Seeding again (another instance) never adds.
        reading = await enforcer.read(req([b], 0))
        key = reading.budgets[0].op.key
        assert not await enforcer.storage.seed(key, {"s": 90 * CENT}, 0, reading.now_ms)
        assert await state(enforcer, b) == (90 * CENT, 10 * CENT)

    async def test_a_failing_loader_is_a_storage_failure(
        self, make_enforcer: Callable[..., Enforcer]
    ) -> None:
        async def loader(budget: BudgetLimit, period: Period) -> int:
            raise OSError("database down")

        with pytest.raises(StorageError, match="ledger"):
            await make_enforcer(loader=loader).admit(req([BudgetLimit.of(KEY, "1d", USD)]))
        ticket = await make_enforcer(loader=loader, fail_open_budgets=True).admit(
            req([BudgetLimit.of(KEY, "1d", USD)])
        )
        assert ticket.enforced is False

    async def test_bad_configuration(self, make_enforcer: Callable[..., Enforcer]) -> None:
        with pytest.raises(ConfigurationError):
            make_enforcer(mode="lenient")

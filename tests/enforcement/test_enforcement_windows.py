"""Budget windows with an injected clock: periods reset by the clock, never by a job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, Scope, explain
from spendgate.errors import BudgetExceeded

KEY = Scope("key", "k-1")


async def spend(enforcer: Enforcer, budget: BudgetLimit, cost: int) -> None:
    ticket = await enforcer.admit(EnforcementRequest(uuid.uuid4().hex, [budget], estimate_nanos=cost))
    await enforcer.settle(ticket, cost)


async def blocked(enforcer: Enforcer, budget: BudgetLimit, cost: int = CENT) -> BudgetExceeded | None:
    try:
        ticket = await enforcer.admit(EnforcementRequest(uuid.uuid4().hex, [budget], estimate_nanos=cost))
    except BudgetExceeded as exc:
        return exc
    await enforcer.release(ticket)
    return None


@all_storages
class TestWindows:
    async def test_daily_in_kolkata_resets_at_local_midnight(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        tz = ZoneInfo("Asia/Kolkata")
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "24h", USD, tz="Asia/Kolkata")
        clock.set(datetime(2026, 11, 18, 23, 0, tzinfo=tz))
        await spend(enforcer, b, USD)
        err = await blocked(enforcer, b)
        assert err is not None and err.reset_at == datetime(2026, 11, 19, 0, 0, tzinfo=tz)
        assert err.reset_at == datetime(2026, 11, 18, 18, 30, tzinfo=UTC)
        clock.set(datetime(2026, 11, 18, 23, 59, 59, 999000, tzinfo=tz))
        assert await blocked(enforcer, b) is not None
        clock.set(datetime(2026, 11, 19, 0, 0, tzinfo=tz))
        assert await blocked(enforcer, b) is None

    async def test_monthly_resets_on_the_first(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "30d", USD)  # LiteLLM's "monthly": the calendar month
        clock.set(datetime(2026, 2, 3, tzinfo=UTC))
        await spend(enforcer, b, USD)
        clock.set(datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
        err = await blocked(enforcer, b)
        assert err is not None and err.reset_at == datetime(2026, 3, 1, tzinfo=UTC)
        clock.set(datetime(2026, 3, 1, tzinfo=UTC))
        assert await blocked(enforcer, b) is None

    async def test_a_day_across_the_dst_change_in_berlin(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        tz = ZoneInfo("Europe/Berlin")
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", USD, tz="Europe/Berlin")
        # 2026-03-29: clocks go from 02:00 to 03:00; the local day lasts 23 hours.
        clock.set(datetime(2026, 3, 29, 0, 30, tzinfo=tz))
        await spend(enforcer, b, USD)
        [state] = await explain(enforcer, EnforcementRequest("probe", [b]))
        assert state.period_end is not None
        assert state.period_end - state.period_start == timedelta(hours=23)
        clock.set(datetime(2026, 3, 29, 23, 59, tzinfo=tz))
        assert await blocked(enforcer, b) is not None
        clock.set(datetime(2026, 3, 30, 0, 0, tzinfo=tz))
        assert await blocked(enforcer, b) is None
        # Autumn: 25 hours, still one period.
        clock.set(datetime(2026, 10, 25, 0, 30, tzinfo=tz))
        await spend(enforcer, b, USD)
        clock.set(datetime(2026, 10, 25, 23, 30, tzinfo=tz))
        err = await blocked(enforcer, b)
        assert err is not None and err.reset_at == datetime(2026, 10, 26, tzinfo=tz)

    async def test_quarterly_with_a_fiscal_year_starting_in_april(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "quarter", USD, fiscal_start_month=4, tz="Europe/London")
        clock.set(datetime(2026, 5, 10, tzinfo=UTC))
        await spend(enforcer, b, USD)
        clock.set(datetime(2026, 6, 30, 12, tzinfo=UTC))
        err = await blocked(enforcer, b)
        assert err is not None and err.reset_at == datetime(2026, 7, 1, tzinfo=ZoneInfo("Europe/London"))
        assert err.window == "quarter@4"
        clock.set(datetime(2026, 7, 1, tzinfo=ZoneInfo("Europe/London")))
        assert await blocked(enforcer, b) is None

    async def test_rolling_seven_days(self, make_enforcer: Callable[..., Enforcer], clock: FakeClock) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "rolling:7d", USD)
        start = datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
        clock.set(start)
        await spend(enforcer, b, 60 * CENT)
        clock.set(start + timedelta(days=3))
        await spend(enforcer, b, 40 * CENT)
        err = await blocked(enforcer, b)
        assert err is not None
        # The first spend leaves the window 7 days after its hour bucket ends (never early).
        assert err.reset_at == datetime(2026, 11, 9, 11, 0, tzinfo=UTC)
        clock.set(start + timedelta(days=7))
        assert await blocked(enforcer, b) is not None
        clock.set(datetime(2026, 11, 9, 11, 0, tzinfo=UTC))
        assert await blocked(enforcer, b, 60 * CENT) is None
        assert await blocked(enforcer, b, 61 * CENT) is not None
        clock.set(start + timedelta(days=10, hours=1))
        assert await blocked(enforcer, b, USD) is None

    async def test_the_previous_period_stays_readable(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "1d", USD)
        clock.set(datetime(2026, 11, 18, 12, tzinfo=UTC))
        await spend(enforcer, b, 70 * CENT)
        clock.set(datetime(2026, 11, 19, 9, tzinfo=UTC))
        await spend(enforcer, b, 10 * CENT)
        [today] = await explain(enforcer, EnforcementRequest("probe", [b]))
        assert today.spend_nanos == 10 * CENT
        clock.set(datetime(2026, 11, 18, 23, tzinfo=UTC))  # read yesterday's period again
        [yesterday] = await explain(enforcer, EnforcementRequest("probe", [b]))
        assert (yesterday.spend_nanos, yesterday.period_start) == (
            70 * CENT,
            datetime(2026, 11, 18, tzinfo=UTC),
        )

    async def test_several_windows_at_once(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        hourly = BudgetLimit.of(KEY, "1h", 10 * CENT)
        monthly = BudgetLimit.of(KEY, "1mo", 25 * CENT)
        for hour in range(3):
            clock.set(datetime(2026, 11, 18, hour, tzinfo=UTC))
            await spend(enforcer, hourly, 0)  # touch
            if hour < 2:
                t = await enforcer.admit(
                    EnforcementRequest(f"r{hour}", [hourly, monthly], estimate_nanos=10 * CENT)
                )
                await enforcer.settle(t, 10 * CENT)
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(EnforcementRequest("r3", [hourly, monthly], estimate_nanos=10 * CENT))
        assert info.value.window == "1mo"

    async def test_a_short_rolling_window_with_many_open_reservations(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        b = BudgetLimit.of(KEY, "rolling:10s", USD)
        clock.t = 1_800_000_000.0
        for _ in range(5):
            clock.advance(1)
            await spend(enforcer, b, 10 * CENT)
        for i in range(15):  # more open reservations than the window has buckets
            await enforcer.admit(EnforcementRequest(f"open{i}", [b], estimate_nanos=CENT))
        [state] = await explain(enforcer, EnforcementRequest("probe", [b]))
        assert (state.spend_nanos, state.reserved_nanos) == (50 * CENT, 15 * CENT)
        clock.advance(8)  # the first two seconds' spend has left the window
        [state] = await explain(enforcer, EnforcementRequest("probe", [b]))
        assert state.spend_nanos == 30 * CENT

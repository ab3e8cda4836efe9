"""Budget crossings detected at settlement (issue #15): each level once per window and period
on an instance, again in the next period, never for a past one; a raised limit clears; a
forecast past the limit; on the in-process counters and on Redis alike."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, Reservation
from spendgate.enforcement.crossings import Crossing, CrossingWatch, alert_of

KEY = Scope("key", "k-1")
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 19, 0, 0, tzinfo=UTC)


class Seen:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.crossings: list[Crossing] = []

    def __call__(self, crossings: list[Crossing]) -> None:
        self.crossings.extend(crossings)

    def levels(self) -> list[tuple[str, str | None]]:
        return [(c.kind, None if c.threshold is None else f"{c.threshold}") for c in self.crossings]


def _watching(
    make_enforcer: Callable[..., Enforcer], **options: object
) -> tuple[Enforcer, Seen, CrossingWatch]:
    seen = Seen()
    watch = CrossingWatch(seen, **options)  # type: ignore[arg-type]
    return make_enforcer(watch=watch), seen, watch


_ids = itertools.count()


async def _spend(enforcer: Enforcer, budgets: list[BudgetLimit], cost: int, n: int = 1) -> None:
    for _ in range(n):
        ticket = await enforcer.admit(EnforcementRequest(f"r{next(_ids)}", budgets, (), cost, 0))
        assert await enforcer.settle(ticket, cost)


@all_storages
class TestThresholds:
    async def test_each_threshold_once_then_again_next_day(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(NOON - timedelta(hours=11))  # 01:00: too early in the day for a forecast
        enforcer, seen, _ = _watching(make_enforcer)
        daily = [BudgetLimit.of(KEY, "1d", USD)]
        await _spend(enforcer, daily, 10 * CENT, 4)  # 40 %
        assert seen.levels() == []
        await _spend(enforcer, daily, 10 * CENT)  # 50 %: reached exactly
        assert seen.levels() == [("threshold", "50")]
        await _spend(enforcer, daily, 10 * CENT, 2)  # 70 %: nothing new
        await _spend(enforcer, daily, 10 * CENT)  # 80 %
        await _spend(enforcer, daily, 20 * CENT)  # 100 %: the limit reached exactly
        assert seen.levels() == [("threshold", "50"), ("threshold", "80"), ("threshold", "100")]
        first = seen.crossings[0]
        assert first.spend_nanos == 50 * CENT and first.limit_nanos == USD
        assert (first.start_ms, first.end_ms) == (
            int(datetime(2026, 11, 18, tzinfo=UTC).timestamp() * 1000),
            int(MIDNIGHT.timestamp() * 1000),
        )
        clock.set(MIDNIGHT + timedelta(hours=1))  # the next day: a new period
        await _spend(enforcer, daily, 90 * CENT)
        assert seen.levels()[3:] == [("threshold", "50"), ("threshold", "80")]
        assert seen.crossings[3].start_ms == int(MIDNIGHT.timestamp() * 1000)

    async def test_a_jump_past_several_levels_reports_each(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(NOON - timedelta(hours=11))
        enforcer, seen, _ = _watching(make_enforcer, thresholds=[Decimal(50), Decimal("87.5"), Decimal(100)])
        await _spend(enforcer, [BudgetLimit.of(KEY, "1d", USD)], 90 * CENT)
        assert seen.levels() == [("threshold", "50"), ("threshold", "87.5")]

    async def test_a_settle_into_an_ended_period_reports_nothing(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(MIDNIGHT - timedelta(seconds=1))
        enforcer, seen, _ = _watching(make_enforcer)
        daily = [BudgetLimit.of(KEY, "1d", USD)]
        ticket = await enforcer.admit(EnforcementRequest("late", daily, (), USD, 0))
        clock.set(MIDNIGHT + timedelta(seconds=5))  # a long stream ends after midnight
        assert await enforcer.settle(ticket, 90 * CENT)
        assert seen.levels() == []

    async def test_concurrent_settles_report_each_level_once(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(NOON - timedelta(hours=11))
        enforcer, seen, _ = _watching(make_enforcer)
        daily = [BudgetLimit.of(KEY, "1d", USD)]

        async def one(i: int) -> None:
            ticket = await enforcer.admit(EnforcementRequest(f"c{i}", daily, (), CENT, 0))
            await asyncio.sleep(0)
            await enforcer.settle(ticket, CENT)

        await asyncio.gather(*(one(i) for i in range(100)))
        assert sorted(seen.levels()) == [("threshold", "100"), ("threshold", "50"), ("threshold", "80")]

    async def test_a_raised_limit_clears_and_the_soft_budget_alerts(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(NOON - timedelta(hours=11))
        enforcer, seen, _ = _watching(make_enforcer)
        base = BudgetLimit.of(KEY, "1d", USD, soft_nanos=70 * CENT)
        await _spend(enforcer, [base], 85 * CENT)
        assert seen.levels() == [("threshold", "50"), ("threshold", "80"), ("soft", None)]
        raised = BudgetLimit.of(KEY, "1d", USD, soft_nanos=70 * CENT, temp_increase_nanos=USD)
        await _spend(enforcer, [raised], CENT)  # 86 % of $1 = 43 % of $2
        cleared = seen.crossings[3:]
        assert [(c.kind, c.threshold) for c in cleared] == [("cleared", Decimal(80))]
        assert cleared[0].limit_nanos == 2 * USD and cleared[0].spend_nanos == 86 * CENT
        alert = alert_of(cleared[0])
        assert alert.kind == "budget_resolved" and alert.extra["reason"] == "limit_raised"
        assert "back under 80%" in alert.message

    async def test_a_forecast_past_the_limit(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(datetime(2026, 11, 18, 6, 0, tzinfo=UTC))  # a quarter of the day gone
        enforcer, seen, _ = _watching(make_enforcer, thresholds=[Decimal(90)])
        daily = [BudgetLimit.of(KEY, "1d", USD)]
        await _spend(enforcer, daily, 20 * CENT)  # pace: 80 % by midnight
        assert seen.levels() == []
        await _spend(enforcer, daily, 10 * CENT)  # pace: 120 %
        [projected] = seen.crossings
        assert projected.kind == "projected"
        assert projected.projected_nanos == 120 * CENT
        # The limit is reached at 1/0.3 of the time so far: 06:00 × 10/3 = 20:00.
        assert projected.projected_at_ms == int(datetime(2026, 11, 18, 20, 0, tzinfo=UTC).timestamp() * 1000)
        await _spend(enforcer, daily, 10 * CENT)
        assert len(seen.crossings) == 1  # once per period

    async def test_an_entitys_own_thresholds_add_to_the_configured_ones(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        clock.set(NOON - timedelta(hours=11))
        enforcer, seen, _ = _watching(make_enforcer)
        own = replace(BudgetLimit.of(KEY, "1d", USD), alert_thresholds=(Decimal(30), Decimal(90)))
        await _spend(enforcer, [own], 95 * CENT)
        assert seen.levels() == [
            ("threshold", "30"),
            ("threshold", "50"),
            ("threshold", "80"),
            ("threshold", "90"),
        ]


class TestMemo:
    async def test_a_forgotten_crossing_is_reported_by_the_next_settle(self, clock: FakeClock) -> None:
        from spendgate.enforcement import MemoryStorage

        clock.set(NOON - timedelta(hours=11))
        seen = Seen()
        watch = CrossingWatch(seen)
        enforcer = Enforcer(MemoryStorage(), clock=clock, watch=watch)
        daily = [BudgetLimit.of(KEY, "1d", USD)]
        await _spend(enforcer, daily, 60 * CENT)
        [first] = seen.crossings
        await _spend(enforcer, daily, CENT)
        assert len(seen.crossings) == 1
        watch.forget(first.memo)  # e.g. the database was down when it was written
        await _spend(enforcer, daily, CENT)
        assert seen.levels() == [("threshold", "50"), ("threshold", "50")]

    async def test_a_failing_sink_never_fails_the_settle(self, clock: FakeClock) -> None:
        from spendgate.enforcement import MemoryStorage

        def broken(crossings: list[Crossing]) -> None:
            raise RuntimeError("sink down")

        enforcer = Enforcer(MemoryStorage(), clock=clock, watch=CrossingWatch(broken))
        ticket = await enforcer.admit(EnforcementRequest("x", [BudgetLimit.of(KEY, "1d", USD)], (), USD, 0))
        assert await enforcer.settle(ticket, USD)

    async def test_a_batch_reservation_rebuilt_from_json_is_watched_as_a_live_one(
        self, clock: FakeClock
    ) -> None:
        """A batch's reservation keeps the limits it was planned from: settled from its JSON
        (another instance, hours later), it reports the crossings the live one would."""
        from spendgate.enforcement import MemoryStorage

        clock.set(NOON - timedelta(hours=11))
        limits = [
            BudgetLimit.of(KEY, "1d", USD, soft_nanos=70 * CENT),
            replace(
                BudgetLimit.of(Scope("team", "t-1"), "1mo", USD, tz="Asia/Kolkata"),
                alert_thresholds=(Decimal(85),),
            ),
            BudgetLimit.of(Scope("user", "u-1"), "rolling:7d", 10 * USD),
        ]
        seen = {"live": Seen(), "stored": Seen()}
        for how, sink in seen.items():
            enforcer = Enforcer(MemoryStorage(), clock=clock, watch=CrossingWatch(sink))
            ticket = await enforcer.admit(EnforcementRequest("b", limits, (), USD, 0))
            if how == "stored":
                ticket = Reservation.from_json(json.loads(json.dumps(ticket.to_json())))
                assert ticket.stored_limits == tuple(limits)
            assert await enforcer.settle(ticket, 90 * CENT)
        assert seen["stored"].crossings == seen["live"].crossings
        assert seen["stored"].levels() == [
            ("threshold", "50"),  # the key's day
            ("threshold", "80"),
            ("soft", None),
            ("threshold", "50"),  # the team's Kolkata month, with its own 85 %
            ("threshold", "80"),
            ("threshold", "85"),
            ("projected", None),
        ]  # (the user's rolling week: 9 %, nothing)

    async def test_a_batch_settled_hours_later_is_read_at_its_limit_now_and_not_in_rolling_windows(
        self, clock: FakeClock
    ) -> None:
        """Hours between a batch's admission and its settle: a temporary increase that has
        expired since is not the limit any more (no false "back under" resolution), and a
        rolling window's spend as the storage answers it spans more than the window (summed
        from the oldest bucket at admission), so it is not checked."""
        from spendgate.enforcement import MemoryStorage

        clock.set(datetime(2026, 11, 1, 6, 0, tzinfo=UTC))
        seen = Seen()
        enforcer = Enforcer(MemoryStorage(), clock=clock, watch=CrossingWatch(seen))
        expiry = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
        month = BudgetLimit.of(KEY, "1mo", USD, temp_increase_nanos=USD, temp_expiry=expiry)
        day = BudgetLimit.of(Scope("user", "u-1"), "rolling:1d", USD)
        await _spend(enforcer, [day], 45 * CENT)  # at 06:00: out of the rolling day by the settle
        clock.set(datetime(2026, 11, 1, 22, 0, tzinfo=UTC))
        request = EnforcementRequest("b", [month, day], (), 10 * CENT, 0)
        batch = await enforcer.admit(request, lease_seconds=86_400)
        stored = Reservation.from_json(json.loads(json.dumps(batch.to_json())))
        clock.set(datetime(2026, 11, 2, 21, 0, tzinfo=UTC))  # the increase expired; a day on
        await _spend(enforcer, [month], 85 * CENT)
        before = seen.levels()
        assert ("threshold", "80") in before  # of the $1 the month has now
        assert await enforcer.settle(stored, 5 * CENT)  # 90 % of the month; the rolling day: 5 %
        assert seen.levels() == before  # nothing new, nothing "cleared"

    @pytest.mark.parametrize(
        "limits", [None, "not a list", [{"scope": ["key"]}]], ids=["absent", "odd", "bad"]
    )
    async def test_a_reservation_stored_without_readable_limits_is_settled_unwatched(
        self, clock: FakeClock, limits: object
    ) -> None:
        """Stored before limits were kept (or with limits that cannot be read): it still
        settles; its crossings are reported by the window's next live settle."""
        from spendgate.enforcement import MemoryStorage

        clock.set(NOON - timedelta(hours=11))
        seen = Seen()
        enforcer = Enforcer(MemoryStorage(), clock=clock, watch=CrossingWatch(seen))
        ticket = await enforcer.admit(EnforcementRequest("b", [BudgetLimit.of(KEY, "1d", USD)], (), USD, 0))
        data = ticket.to_json()
        if limits is None:
            del data["limits"]
        else:
            data["limits"] = limits
        stored = Reservation.from_json(data)
        assert stored.stored_limits == ()
        assert await enforcer.settle(stored, 90 * CENT)
        assert seen.levels() == []
        await _spend(enforcer, [BudgetLimit.of(KEY, "1d", USD)], 0)
        assert seen.levels() == [("threshold", "50"), ("threshold", "80")]


@pytest.mark.parametrize("bad", [Decimal(0), Decimal(-5), Decimal("NaN")])
def test_thresholds_must_be_positive_percents(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="positive percent"):
        CrossingWatch(Seen(), thresholds=[bad])


@all_storages
async def test_a_keys_main_window_and_a_limit_of_the_same_duration_alert_apart(
    make_enforcer: Callable[..., Enforcer], clock: FakeClock
) -> None:
    """A key's ``max_budget`` of $100 a month and a ``budget_limits`` $50 a month are two
    budgets (only the main one counts spend adjustments): each one's crossings are alerts of
    their own identity, so neither is dropped as already decided by the other's."""
    clock.set(datetime(2026, 11, 3, 1, 0, tzinfo=UTC))
    enforcer, seen, _ = _watching(make_enforcer)
    main = BudgetLimit.of(KEY, "1mo", 100 * USD, main=True)
    cap = BudgetLimit.of(KEY, "1mo", 50 * USD)
    await _spend(enforcer, [main, cap], USD, 45)  # the cap at 90 %, the main window at 45 %
    await _spend(enforcer, [main], USD, 5)  # the main window at 50 % (the cap is not asked)
    decided = {
        (a.kind, a.window, a.threshold): c.budget.main
        for c in seen.crossings
        for a in [alert_of(c)]
        if c.kind == "threshold"
    }
    assert decided == {
        ("budget_crossed", "limits:1mo", Decimal(50)): False,
        ("budget_crossed", "limits:1mo", Decimal(80)): False,
        ("budget_crossed", "1mo", Decimal(50)): True,
    }
    assert alert_of(seen.crossings[0]).message.startswith("key k-1 has used 50% of its monthly budget limit")

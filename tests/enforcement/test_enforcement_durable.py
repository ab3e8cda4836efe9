"""Durable reservations: a per-request lease, and a reservation stored as JSON and settled
by another enforcer on the same storage (a batch's, settled hours later) — on every backend.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from counter_backends import CENT, REDIS_URL, USD, FakeClock, all_storages
from spendgate.enforcement import (
    BudgetLimit,
    EnforcementRequest,
    Enforcer,
    MemoryStorage,
    RateLimit,
    Reservation,
    Scope,
    Storage,
    explain,
)
from spendgate.errors import BudgetExceeded, RateLimited

KEY = Scope("key", "k-1")
TEAM = Scope("team", "t-1")
HOUR = 3600.0
DAY = 24 * HOUR


def req(budgets: list[BudgetLimit], cost: int, rates: list[RateLimit] | None = None) -> EnforcementRequest:
    return EnforcementRequest(uuid.uuid4().hex, budgets, rates or [], cost, 100)


async def state(enforcer: Enforcer, budget: BudgetLimit) -> tuple[int, int]:
    [s] = await explain(enforcer, EnforcementRequest("probe", [budget]))
    return s.spend_nanos, s.reserved_nanos


def stored(reservation: Reservation) -> Reservation:
    """The reservation after a trip through a database row (JSON text)."""
    return Reservation.from_json(json.loads(json.dumps(reservation.to_json())))


@pytest_asyncio.fixture
async def same_storage(storage: Storage) -> AsyncIterator[Storage]:
    """The storage as another instance sees it: a new Redis client on the same Redis and prefix
    (in-process: the same storage object)."""
    if isinstance(storage, MemoryStorage):
        yield storage
        return
    from spendgate.stores.counters.redis import RedisStorage

    other = RedisStorage.from_url(REDIS_URL, prefix=storage.prefix, socket_timeout=15)
    try:
        yield other
    finally:
        await other.close()


@pytest.fixture
def make_other(same_storage: Storage, clock: FakeClock) -> Callable[..., Enforcer]:
    def make(**options: Any) -> Enforcer:
        options.setdefault("clock", clock)
        return Enforcer(same_storage, **options)

    return make


@all_storages
class TestDurableReservation:
    async def test_settled_by_another_enforcer(
        self, make_enforcer: Callable[..., Enforcer], make_other: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        a = make_enforcer()
        monthly = BudgetLimit.of(KEY, "1mo", USD)
        team = BudgetLimit.of(TEAM, "rolling:7d", USD)
        tokens = RateLimit(KEY, "tokens", 10**6, 60)
        reservation = await a.admit(req([monthly, team], 40 * CENT, [tokens]), lease_seconds=DAY)
        assert reservation.lease_ms == int(DAY * 1000)
        row = json.dumps(reservation.to_json())
        del a  # the instance that admitted it is gone
        clock.advance(3 * HOUR)
        b = make_other()
        assert await state(b, monthly) == (0, 40 * CENT)
        assert await state(b, team) == (0, 40 * CENT)
        assert await b.settle(Reservation.from_json(json.loads(row)), 13 * CENT, 80) is True
        assert await state(b, monthly) == (13 * CENT, 0)
        assert await state(b, team) == (13 * CENT, 0)

    async def test_settle_twice_counts_once_and_a_release_after_does_nothing(
        self, make_enforcer: Callable[..., Enforcer], make_other: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        a, b = make_enforcer(), make_other()
        monthly = BudgetLimit.of(KEY, "1mo", USD)
        reservation = await a.admit(req([monthly], 40 * CENT), lease_seconds=DAY)
        clock.advance(HOUR)
        assert await a.settle(reservation, 7 * CENT) is True
        clock.advance(2 * HOUR)  # past the enforcer's idempotency (1 h), within the lease
        assert await b.settle(stored(reservation), 7 * CENT) is False
        assert await a.settle(reservation, 7 * CENT) is False
        assert await b.release(stored(reservation)) is False
        assert await a.release(reservation) is False
        assert await state(b, monthly) == (7 * CENT, 0)

    async def test_released_by_another_enforcer(
        self, make_enforcer: Callable[..., Enforcer], make_other: Callable[..., Enforcer]
    ) -> None:
        a, b = make_enforcer(), make_other()
        monthly = BudgetLimit.of(KEY, "1mo", USD)
        parallel = RateLimit(KEY, "parallel", 1)
        reservation = await a.admit(req([monthly], 40 * CENT, [parallel]), lease_seconds=DAY)
        with pytest.raises(RateLimited):
            await b.admit(req([monthly], CENT, [parallel]))
        assert await b.release(stored(reservation)) is True
        assert await a.release(reservation) is False
        assert await state(a, monthly) == (0, 0)
        await b.settle(await b.admit(req([monthly], CENT, [parallel])), CENT)  # the slot is free

    async def test_a_day_long_lease_outlives_the_enforcers_lease(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()  # its own lease: 900 s
        monthly = BudgetLimit.of(KEY, "1mo", 15 * CENT)
        await enforcer.admit(req([monthly], 10 * CENT), lease_seconds=DAY)
        clock.advance(HOUR)
        with pytest.raises(BudgetExceeded):  # the admission an hour later still sees it
            await enforcer.admit(req([monthly], 10 * CENT))
        short = await enforcer.admit(req([monthly], 5 * CENT))
        await enforcer.release(short)
        assert await state(enforcer, monthly) == (0, 10 * CENT)
        clock.advance(24 * HOUR)  # 25 h after the admission: the lease ran out
        assert await state(enforcer, monthly) == (0, 0)
        await enforcer.release(await enforcer.admit(req([monthly], 15 * CENT)))

    async def test_a_parallel_slot_keeps_the_lease(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        parallel = RateLimit(KEY, "parallel", 1)
        await enforcer.admit(req([], 0, [parallel]), lease_seconds=DAY)
        clock.advance(HOUR)
        with pytest.raises(RateLimited):
            await enforcer.admit(req([], 0, [parallel]))
        clock.advance(24 * HOUR)
        await enforcer.release(await enforcer.admit(req([], 0, [parallel])))

    async def test_renew_extends_by_the_reservations_lease(
        self, make_enforcer: Callable[..., Enforcer], make_other: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        a = make_enforcer()
        monthly = BudgetLimit.of(KEY, "1mo", USD)
        reservation = await a.admit(req([monthly], 10 * CENT), lease_seconds=DAY)
        clock.advance(23 * HOUR)
        assert await make_other().renew(stored(reservation)) == 1
        clock.advance(23 * HOUR)  # 46 h: renewed at 23 h for 24 h
        assert await state(a, monthly) == (0, 10 * CENT)
        clock.advance(2 * HOUR)
        assert await state(a, monthly) == (0, 0)

    async def test_without_a_lease_nothing_changes(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer(lease_seconds=60)
        monthly = BudgetLimit.of(KEY, "1mo", USD)
        reservation = await enforcer.admit(req([monthly], 10 * CENT))
        assert reservation.lease_ms == 0 and reservation.to_json()["lease_ms"] == 0
        clock.advance(50)
        assert await enforcer.renew(stored(reservation)) == 1  # by the enforcer's 60 s
        clock.advance(59)
        assert await state(enforcer, monthly) == (0, 10 * CENT)
        clock.advance(2)
        assert await state(enforcer, monthly) == (0, 0)

    @pytest.mark.parametrize("lease", [0, -1.0, float("inf"), float("nan")])
    async def test_a_lease_must_be_positive(
        self, make_enforcer: Callable[..., Enforcer], lease: float
    ) -> None:
        with pytest.raises(ValueError, match="lease_seconds"):
            await make_enforcer().admit(req([BudgetLimit.of(KEY, "1mo", USD)], CENT), lease_seconds=lease)


async def test_a_long_lease_keeps_a_rolling_counter_alive() -> None:
    # A rolling window's counter lives the window + a bucket + 1 h after the last request;
    # a day-long reservation keeps it (and its lease set) alive, and a later short request
    # does not cut that short. (In-process: key expiry follows the test's clock.)
    clock = FakeClock()
    enforcer = Enforcer(MemoryStorage(), clock=clock)
    hourly = BudgetLimit.of(KEY, "rolling:1h", USD)
    batch = await enforcer.admit(req([hourly], 50 * CENT), lease_seconds=DAY)
    clock.advance(HOUR / 2)
    await enforcer.settle(await enforcer.admit(req([hourly], CENT)), CENT)
    clock.advance(10 * HOUR)
    assert await state(enforcer, hourly) == (0, 50 * CENT)
    with pytest.raises(BudgetExceeded):
        await enforcer.admit(req([hourly], 60 * CENT))
    assert await enforcer.settle(stored(batch), 30 * CENT) is True
    assert await state(enforcer, hourly) == (0, 0)  # charged to the bucket of its admission, long gone


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_keys_of_a_long_lease_are_never_shortened(storage: Storage) -> None:
    # On Redis, keys expire on the server's clock: their time-to-live is read instead.
    enforcer = Enforcer(storage)
    hourly = BudgetLimit.of(KEY, "rolling:1h", USD)
    parallel = RateLimit(KEY, "parallel", 10)
    batch = await enforcer.admit(req([hourly], 50 * CENT, [parallel]), lease_seconds=DAY)
    await enforcer.settle(await enforcer.admit(req([hourly], CENT, [parallel])), CENT)
    client = storage.client  # type: ignore[attr-defined]
    op = batch.budget_ops[0]
    for key in (op.key, op.lease_key, batch.rate_ops[0].key):
        assert await client.pttl(key) > DAY * 1000, key
    await enforcer.release(batch)


class TestJson:
    def test_only_strings_ints_and_lists(self) -> None:
        def check(value: Any) -> None:
            assert type(value) in (str, int, list, dict)
            for item in (
                value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            ):
                check(item)

        reservation = Reservation(
            "r-1",
            1_700_000_000_000,
            5 * CENT,
            300,
            budget_ops=(),
            rate_ops=(),
            lease_ms=86_400_000,
        )
        data = reservation.to_json()
        check(data)
        again = Reservation.from_json(data)
        assert (again.request_id, again.admitted_at_ms, again.reserved_nanos, again.estimate_tokens) == (
            "r-1",
            1_700_000_000_000,
            5 * CENT,
            300,
        )
        assert again.lease_ms == 86_400_000 and again.enforced

    async def test_round_trip_keeps_every_operation(self) -> None:
        clock = FakeClock()
        enforcer = Enforcer(MemoryStorage(), clock=clock, loader=_zero)
        reservation = await enforcer.admit(
            req(
                [BudgetLimit.of(KEY, "1mo", USD), BudgetLimit.of(TEAM, "rolling:7d", USD)],
                CENT,
                [
                    RateLimit(KEY, "requests", 10, 60),
                    RateLimit(KEY, "tokens", 10**6, 60),
                    RateLimit(KEY, "parallel", 3),
                ],
            ),
            lease_seconds=DAY,
        )
        again = stored(reservation)
        assert again.budget_ops == reservation.budget_ops and again.rate_ops == reservation.rate_ops
        assert all(op.require_seed is True for op in again.budget_ops)
        assert again.to_json() == reservation.to_json()
        assert again.budgets == () and again.soft_crossed == ()  # the admission's views are not kept

    async def test_an_unenforced_reservation_settles_to_nothing(self) -> None:
        enforcer = Enforcer(MemoryStorage())
        again = stored(Reservation("r", 0, 0, 0, enforced=False))
        assert again.enforced is False
        assert await enforcer.settle(again, CENT) is False

    @pytest.mark.parametrize(
        "change",
        [
            lambda d: d.pop("budgets"),
            lambda d: d.update(v=2),
            lambda d: d.update(enforced=True),
            lambda d: d.update(reserved_nanos="5"),
            lambda d: d.update(budgets=[["k", "l", 1, 2, "s", 0, 0, 0]]),
            lambda d: d.update(rates=[["k", 1, 1, 1, 0, 0, 1.5]]),
        ],
    )
    def test_anything_else_is_refused(self, change: Callable[[dict[str, Any]], Any]) -> None:
        data = Reservation("r", 0, 0, 0, lease_ms=1000).to_json()
        change(data)
        with pytest.raises(ValueError, match="stored reservation"):
            Reservation.from_json(data)
        with pytest.raises(ValueError, match="stored reservation"):
            Reservation.from_json([data])


async def _zero(budget: BudgetLimit, period: Any) -> int:
    return 0


async def test_a_renewed_long_lease_keeps_its_keys_alive() -> None:
    # Renewed at 23 h for another day, the reservation outlives the life its keys were given
    # at admission (the lease and an hour): renew extends them too. (In-process clock.)
    clock = FakeClock()
    enforcer = Enforcer(MemoryStorage(), clock=clock)
    hourly = BudgetLimit.of(KEY, "rolling:1h", USD)
    parallel = RateLimit(KEY, "parallel", 1)
    batch = await enforcer.admit(req([hourly], 50 * CENT, [parallel]), lease_seconds=DAY)
    clock.advance(23 * HOUR)
    assert await enforcer.renew(stored(batch)) == 2
    clock.advance(23 * HOUR)
    assert await state(enforcer, hourly) == (0, 50 * CENT)
    with pytest.raises(RateLimited):
        await enforcer.admit(req([], 0, [parallel]))
    assert await enforcer.release(batch) is True
    assert await state(enforcer, hourly) == (0, 0)


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_renew_extends_the_keys_of_a_long_lease(storage: Storage) -> None:
    enforcer = Enforcer(storage)
    hourly = BudgetLimit.of(KEY, "rolling:1h", USD)
    parallel = RateLimit(KEY, "parallel", 10)
    batch = await enforcer.admit(req([hourly], 50 * CENT, [parallel]), lease_seconds=HOUR)
    client = storage.client  # type: ignore[attr-defined]
    keys = (batch.budget_ops[0].key, batch.budget_ops[0].lease_key, batch.rate_ops[0].key)
    before = [await client.pttl(key) for key in keys]
    assert all(0 < ttl <= 3 * HOUR * 1000 for ttl in before)
    renewed = Reservation.from_json({**batch.to_json(), "lease_ms": int(DAY * 1000)})
    assert await enforcer.renew(renewed) == 2
    for key in keys:
        assert await client.pttl(key) > DAY * 1000, key
    await enforcer.release(batch)

"""Redis only: several processes, one round trip per operation, outage policy, one hash tag.

The storage's own tests (construction, Lua scripts) are in tests/stores/counters."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from counter_backends import CENT, REDIS_URL, USD, FakeClock, unique_prefix
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, RateLimit, Scope, explain
from spendgate.errors import StorageError
from spendgate.stores.counters.redis import RedisStorage

pytestmark = pytest.mark.redis
KEY = Scope("key", "k-1")
CHILD = Path(__file__).with_name("enforcement_child.py")


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_three_processes_share_one_budget(storage: RedisStorage, clock: FakeClock) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), REDIS_URL, storage.prefix, "150", str(clock())],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    counts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        counts.append(int(out.strip()))
    assert sum(counts) == 100, counts
    enforcer = Enforcer(storage, clock=clock)
    [state] = await explain(
        enforcer, EnforcementRequest("p", [BudgetLimit.of(Scope("key", "shared"), "24h", USD)])
    )
    assert (state.spend_nanos, state.reserved_nanos) == (USD, 0)


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_three_processes_share_one_sliding_window(storage: RedisStorage) -> None:
    # 20 requests per 2 s, driven at 3x (3 processes x 10/s) for 10 s of real time, starting
    # on a window boundary: the limit allows 100.
    child = Path(__file__).with_name("enforcement_rate_child.py")
    procs = [
        subprocess.Popen(
            [sys.executable, str(child), REDIS_URL, storage.prefix, str(i / 30)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:  # every process has started and connected
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    start = math.ceil((time.time() + 0.5) / 2) * 2
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start}\n")
        proc.stdin.flush()
    accepted = bad = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        ok, no_retry = map(int, out.split())
        accepted, bad = accepted + ok, bad + no_retry
    assert bad == 0, "every rejection carries a retry-after"
    assert abs(accepted - 100) <= 5, accepted


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_one_round_trip_per_admission_and_per_settlement(
    storage: RedisStorage, clock: FakeClock
) -> None:
    calls: list[Any] = []
    original = storage.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return await original(*args, **kwargs)

    storage.client.execute_command = counting  # type: ignore[method-assign]
    enforcer = Enforcer(storage, clock=clock)
    request = EnforcementRequest(
        "warm",
        [
            BudgetLimit.of(KEY, "1d", USD),
            BudgetLimit.of(Scope("team", "t"), "1mo", USD),
            BudgetLimit.of(Scope("user", "u"), "rolling:7d", USD),
        ],
        [RateLimit(KEY, "requests", 100), RateLimit(KEY, "tokens", 10_000), RateLimit(KEY, "parallel", 10)],
        CENT,
        100,
    )
    await enforcer.settle(await enforcer.admit(request), CENT)  # scripts get loaded
    calls.clear()
    for i in range(5):
        ticket = await enforcer.admit(
            EnforcementRequest(f"r{i}", request.budgets, request.rate_limits, CENT, 100)
        )
        assert len(calls) == 1
        await enforcer.settle(ticket, CENT, 50)
        assert len(calls) == 2
        calls.clear()
    assert set(calls) <= {"EVALSHA"}


async def test_outage_budgets_fail_closed_and_rate_limits_fail_open() -> None:
    storage = RedisStorage.from_url(
        "redis://127.0.0.1:1/0", prefix=unique_prefix(), socket_connect_timeout=0.2
    )
    try:
        budget = BudgetLimit.of(KEY, "1d", USD)
        rate = RateLimit(KEY, "requests", 10)
        default = Enforcer(storage)
        with pytest.raises(StorageError):
            await default.admit(EnforcementRequest("a", [budget], [rate], CENT))
        ticket = await default.admit(EnforcementRequest("b", [], [rate], CENT))
        assert ticket.enforced is False
        assert await default.settle(ticket, CENT) is False
        assert await default.release(ticket) is False

        lenient = Enforcer(storage, fail_open_budgets=True)
        assert (await lenient.admit(EnforcementRequest("c", [budget], [rate], CENT))).enforced is False
        strict = Enforcer(storage, fail_open_rate_limits=False)
        with pytest.raises(StorageError):
            await strict.admit(EnforcementRequest("d", [], [rate], CENT))
        # A settle of a ticket admitted before the outage does not raise.
        enforced = Enforcer(storage)
        from spendgate.enforcement import Reservation

        assert await enforced.settle(Reservation("e", 0, CENT, 0), CENT) is False
    finally:
        await storage.close()


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_every_key_shares_one_hash_tag(storage: RedisStorage, clock: FakeClock) -> None:
    enforcer = Enforcer(storage, clock=clock)
    await enforcer.admit(
        EnforcementRequest(
            uuid.uuid4().hex,
            [BudgetLimit.of(KEY, "1d", USD)],
            [RateLimit(Scope("team_member", "t:u"), "parallel", 3)],
            CENT,
        )
    )
    keys = [k.decode() async for k in storage.client.scan_iter(match=f"{{{storage.prefix}}}:*")]
    assert len(keys) == 3  # budget counter, its leases, the slot set
    from redis.crc import key_slot

    assert len({key_slot(k.encode()) for k in keys}) == 1

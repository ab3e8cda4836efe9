"""Benchmark: the cost of enforcement per request — admission plus settlement.

Run with ``.venv/bin/python bench/enforcement.py [--requests 20000] [--redis-requests 3000]
[--redis redis://127.0.0.1:6379/0]``.

Cases (each request: admit, then settle with its real cost and tokens):

* ``budget``: one key budget (daily);
* ``typical``: key daily + key monthly + team monthly + user rolling 7 d budgets, and key
  requests, tokens and parallel limits (4 budget windows, 3 rate limits);

in-process (MemoryStorage) and with Redis (sequential, one request at a time, so the
figure is latency; Redis round trips are counted by wrapping the client's
``execute_command`` and must be exactly one per admission and one per settlement).
Reported: the median over samples of µs per request (admit + settle), min and max, as
wall time and as this process's CPU time (on a shared machine the wall time includes
waiting for a core), and the CPU cost of an empty function call, to scale the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
import uuid
from typing import Any

from spendgate.enforcement import Admission, BudgetLimit, EnforcementRequest, RateLimit, Scope
from spendgate.enforcement.storage import MemoryStorage, Storage
from spendgate.enforcement.storage.redis import RedisStorage

USD = 1_000_000_000
KEY, TEAM, USER = Scope("key", "k-1"), Scope("team", "t-1"), Scope("user", "u-1")

CASES: dict[str, tuple[list[BudgetLimit], list[RateLimit]]] = {
    "budget": ([BudgetLimit.of(KEY, "1d", 10**6 * USD)], []),
    "typical": (
        [
            BudgetLimit.of(KEY, "1d", 10**6 * USD),
            BudgetLimit.of(KEY, "1mo", 10**6 * USD),
            BudgetLimit.of(TEAM, "1mo", 10**6 * USD, tz="Europe/Berlin"),
            BudgetLimit.of(USER, "rolling:7d", 10**6 * USD),
        ],
        [
            RateLimit(KEY, "requests", 10**9, 60),
            RateLimit(KEY, "tokens", 10**12, 60),
            RateLimit(KEY, "parallel", 1000),
        ],
    ),
}


async def _run(admission: Admission, case: str, n: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request."""
    budgets, limits = CASES[case]
    ids = [uuid.uuid4().hex for _ in range(n)]
    start, cpu = time.perf_counter(), time.process_time()
    for rid in ids:
        ticket = await admission.admit(EnforcementRequest(rid, budgets, limits, 10_000_000, 1500))
        await admission.settle(ticket, 7_000_000, 900)
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def _bench(storage: Storage, case: str, n: int, samples: int) -> tuple[list[float], list[float]]:
    admission = Admission(storage)
    await _run(admission, case, min(n, 200))  # warm up (period cache, scripts loaded)
    wall, cpu = [], []
    for _ in range(samples):
        w, c = await _run(admission, case, n)
        wall.append(w)
        cpu.append(c)
        await storage.clear()
    return wall, cpu


def _calibrate() -> float:
    """CPU ns of an empty Python function call: scales the figures to another machine."""

    def f() -> None:
        return None

    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(200_000):
            f()
        best = min(best, (time.process_time() - start) / 200_000 * 1e9)
    return best


async def _round_trips(url: str) -> tuple[int, int]:
    storage = RedisStorage.from_url(url, prefix=f"sgbench-{uuid.uuid4().hex[:8]}")
    calls: list[Any] = []
    original = storage.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return await original(*args, **kwargs)

    storage.client.execute_command = counting  # type: ignore[method-assign]
    admission = Admission(storage)
    budgets, limits = CASES["typical"]
    await admission.settle(await admission.admit(EnforcementRequest("warm", budgets, limits, 1, 1)), 1)
    calls.clear()
    ticket = await admission.admit(EnforcementRequest("one", budgets, limits, 1, 1))
    admit_calls = len(calls)
    calls.clear()
    await admission.settle(ticket, 1, 1)
    settle_calls = len(calls)
    await storage.clear()
    await storage.close()
    return admit_calls, settle_calls


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} µs (min {min(values):.1f}, max {max(values):.1f})"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis-requests", type=int, default=3_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {platform.machine()}; µs per request (admit + settle)")
    print(f"calibration: an empty Python function call costs {_calibrate():.0f} ns of CPU here")
    for case in CASES:
        wall, cpu = await _bench(MemoryStorage(prefix="bench"), case, args.requests, args.samples)
        print(f"in-process  {case:8s} wall {_fmt(wall)}; CPU {_fmt(cpu)}")
    admit_rt, settle_rt = await _round_trips(args.redis)
    print(f"Redis round trips: admission {admit_rt}, settlement {settle_rt}")
    assert (admit_rt, settle_rt) == (1, 1), "one round trip per admission and per settlement"
    for case in CASES:
        storage = RedisStorage.from_url(args.redis, prefix=f"sgbench-{uuid.uuid4().hex[:8]}")
        try:
            wall, cpu = await _bench(storage, case, args.redis_requests, args.samples)
        finally:
            await storage.clear()
            await storage.close()
        print(f"Redis       {case:8s} wall {_fmt(wall)}; client CPU {_fmt(cpu)}")


if __name__ == "__main__":
    asyncio.run(main())

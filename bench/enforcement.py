"""Benchmark: the cost of enforcement per request — admission plus settlement.

Run with ``.venv/bin/python bench/enforcement.py [--requests 20000] [--redis-requests 3000]
[--redis redis://127.0.0.1:6379/0]``.

Cases (each request: admit, then settle with its real cost and tokens):

* ``budget``: one key budget (daily);
* ``typical``: key daily + key monthly + team monthly + user rolling 7 d budgets, and key
  requests, tokens and parallel limits (4 budget windows, 3 rate limits);

in-process (MemoryStorage) and with Redis (sequential, one request at a time, so the
figure is latency; Redis round trips are counted by wrapping the client's
``execute_command`` and must be exactly one per admission and one per settlement). The
Redis cases run twice, alternating: with redis-py's default reply parser (``hiredis``, a
dependency of spendgate, when installed) and with its pure-Python parser, for comparison.
In-process, the cases run again with ``limit_headers`` on each ticket, as the gateway does.
Reported: the median over samples of µs per request (admit + settle), min and max, as
wall time and as this process's CPU time (on a shared machine the wall time includes
waiting for a core), the CPU cost of an empty function call, to scale the figures, and
the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from typing import Any

from redis._parsers import _AsyncRESP2Parser
from redis.utils import HIREDIS_AVAILABLE

from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, RateLimit, Scope
from spendgate.http.headers import limit_headers
from spendgate.stores.counters import MemoryStorage, Storage
from spendgate.stores.counters.redis import RedisStorage

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


async def _run(enforcer: Enforcer, case: str, n: int, headers: bool = False) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request; ``headers``: also build the response headers."""
    budgets, limits = CASES[case]
    ids = [uuid.uuid4().hex for _ in range(n)]
    start, cpu = time.perf_counter(), time.process_time()
    for rid in ids:
        ticket = await enforcer.admit(EnforcementRequest(rid, budgets, limits, 10_000_000, 1500))
        if headers:
            limit_headers(ticket)
        await enforcer.settle(ticket, 7_000_000, 900)
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def _bench(
    storage: Storage, case: str, n: int, samples: int, headers: bool = False
) -> tuple[list[float], list[float]]:
    enforcer = Enforcer(storage)
    await _run(enforcer, case, min(n, 200))  # warm up (period cache, scripts loaded)
    wall, cpu = [], []
    for _ in range(samples):
        w, c = await _run(enforcer, case, n, headers)
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
    enforcer = Enforcer(storage)
    budgets, limits = CASES["typical"]
    await enforcer.settle(await enforcer.admit(EnforcementRequest("warm", budgets, limits, 1, 1)), 1)
    calls.clear()
    ticket = await enforcer.admit(EnforcementRequest("one", budgets, limits, 1, 1))
    admit_calls = len(calls)
    calls.clear()
    await enforcer.settle(ticket, 1, 1)
    settle_calls = len(calls)
    await storage.clear()
    await storage.close()
    return admit_calls, settle_calls


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} µs (min {min(values):.1f}, max {max(values):.1f})"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _bench_redis(
    url: str, case: str, n: int, samples: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Samples with each reply parser, alternating so both see the same machine."""
    parsers: dict[str, dict[str, Any]] = {"python parser": {"parser_class": _AsyncRESP2Parser}}
    if HIREDIS_AVAILABLE:
        parsers = {"hiredis": {}, **parsers}
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in parsers}
    for _ in range(samples):
        for name, options in parsers.items():
            storage = RedisStorage.from_url(url, prefix=f"sgbench-{uuid.uuid4().hex[:8]}", **options)
            try:
                wall, cpu = await _bench(storage, case, n, 1)
            finally:
                await storage.clear()
                await storage.close()
            out[name][0].extend(wall)
            out[name][1].extend(cpu)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis-requests", type=int, default=3_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {platform.machine()}; µs per request (admit + settle)")
    print(f"load average (1, 5, 15 min): {_load()}")
    print(f"calibration: an empty Python function call costs {_calibrate():.0f} ns of CPU here")
    for case in CASES:
        wall, cpu = await _bench(MemoryStorage(prefix="bench"), case, args.requests, args.samples)
        print(f"in-process  {case:8s} wall {_fmt(wall)}; CPU {_fmt(cpu)}")
    for case in CASES:  # what the gateway does per request: the headers too
        wall, cpu = await _bench(MemoryStorage(prefix="bench"), case, args.requests, args.samples, True)
        print(f"in-process  {case:8s} + limit_headers wall {_fmt(wall)}; CPU {_fmt(cpu)}")
    admit_rt, settle_rt = await _round_trips(args.redis)
    print(f"Redis round trips: admission {admit_rt}, settlement {settle_rt}")
    assert (admit_rt, settle_rt) == (1, 1), "one round trip per admission and per settlement"
    for case in CASES:
        results = await _bench_redis(args.redis, case, args.redis_requests, args.samples)
        for name, (wall, cpu) in results.items():
            print(f"Redis       {case:8s} {name:13s} wall {_fmt(wall)}; client CPU {_fmt(cpu)}")
    print(f"load average (1, 5, 15 min): {_load()}")


if __name__ == "__main__":
    asyncio.run(main())

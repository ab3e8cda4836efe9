"""The budget-crossing detector's cost per settle (issue #15), in process.

A settle hands the watch each budget window's spend after it; most settles are below every
level (one comparison per window), and a window past a level already reported takes the
remembered next level (three comparisons). Times one call of the watch for a request with
three budget windows (a key's daily budget, a team's monthly budget, a global soft budget)
against the bare loop over the same windows, in one process, 9 × 100,000 calls each:

    .venv/bin/python bench/crossings.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, MemoryStorage, Reservation
from spendgate.enforcement.crossings import CrossingWatch


def _loop(reservation: Reservation, spends: Sequence[int], now_ms: int) -> None:
    assert reservation._source is not None
    for (_budget, _op, _window, _), after in zip(reservation._source[1], spends, strict=False):
        if after < 0:
            continue


def _time(call: Callable[..., Any], *args: Any, calls: int = 100_000, rounds: int = 9) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call(*args)
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


async def main() -> None:
    enforcer = Enforcer(MemoryStorage())
    budgets = [
        BudgetLimit.of(Scope("key", "k"), "1d", 10**15),
        BudgetLimit.of(Scope("team", "t"), "1mo", 10**15),
        BudgetLimit.of(Scope("global", "g"), "1d", None, soft_nanos=10**16),
    ]
    reservation = await enforcer.admit(EnforcementRequest("bench", budgets, (), 1000, 0))
    now = reservation.admitted_at_ms
    below, past = (1000, 1000, 1000), (6 * 10**14, 6 * 10**14, 1000)
    fresh = CrossingWatch(lambda found: None)
    reported = CrossingWatch(lambda found: None)
    reported(reservation, past, now)  # 50 % reported once
    base = _time(_loop, reservation, below, now)
    print(f"bare loop over 3 windows          {base:6.2f} µs")
    for label, watch, spends in (
        ("watch, below every level", fresh, below),
        ("watch, past 50 % (reported)", reported, past),
    ):
        took = _time(watch, reservation, spends, now)
        print(f"{label:33} {took:6.2f} µs  (+{took - base:.2f} µs over the loop)")


if __name__ == "__main__":
    asyncio.run(main())

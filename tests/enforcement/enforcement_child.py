"""A separate process admitting against a shared Redis (used by test_enforcement_redis.py).

Usage: python enforcement_child.py <redis url> <prefix> <requests> <clock seconds>
Prints the number of requests it got admitted.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, Scope
from spendgate.errors import BudgetExceeded
from spendgate.stores.counters.redis import RedisStorage

CENT = 10_000_000


async def main(url: str, prefix: str, n: int, now: float) -> int:
    storage = RedisStorage.from_url(
        url, prefix=prefix, max_connections=8, socket_connect_timeout=5, socket_timeout=10
    )
    enforcer = Enforcer(storage, clock=lambda: now)
    budget = BudgetLimit.of(Scope("key", "shared"), "24h", 100 * CENT)

    async def one() -> int:
        try:
            ticket = await enforcer.admit(EnforcementRequest(uuid.uuid4().hex, [budget], estimate_nanos=CENT))
        except BudgetExceeded:
            return 0
        await asyncio.sleep(0.001)
        await enforcer.settle(ticket, CENT)
        return 1

    try:
        return sum(await asyncio.gather(*(one() for _ in range(n))))
    finally:
        await storage.close()


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))

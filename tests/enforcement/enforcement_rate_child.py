"""A separate process sending requests at a fixed pace against a shared Redis rate limit.

Usage: python enforcement_rate_child.py <redis url> <prefix> <offset s>
Prints ``ready`` once connected, reads the start time (epoch seconds) from stdin, then sends
100 requests, one every 0.1 s from ``start + offset``, against 20 requests per 2 s,
with the real clock. Prints ``accepted rejected_without_retry_after``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from spendgate.enforcement import EnforcementRequest, Enforcer, RateLimit, Scope
from spendgate.errors import RateLimited
from spendgate.stores.counters.redis import RedisStorage


async def main(url: str, prefix: str, offset: float) -> tuple[int, int]:
    storage = RedisStorage.from_url(url, prefix=prefix, socket_timeout=10, socket_connect_timeout=5)
    await storage.client.ping()
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    enforcer = Enforcer(storage)
    limit = RateLimit(Scope("key", "shared"), "requests", 20, window_seconds=2)
    accepted = bad = 0
    try:
        for i in range(100):
            delay = start + offset + i * 0.1 - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.time() >= start + 10:  # running late (a loaded machine): stay in the 10 s
                break
            try:
                ticket = await enforcer.admit(EnforcementRequest(uuid.uuid4().hex, [], [limit]))
            except RateLimited as exc:
                bad += exc.retry_after is None or exc.retry_after <= 0
                continue
            accepted += 1
            await enforcer.settle(ticket, 0)
    finally:
        await storage.close()
    return accepted, bad


if __name__ == "__main__":
    ok, bad = asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    print(ok, bad)

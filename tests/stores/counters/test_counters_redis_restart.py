"""Redis restarted under the counters: the first admission after the restart succeeds (its
dead pooled connections are replaced on the first failure), and a Redis that stays down
still gets the declared policy (fail closed for budgets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from counter_backends import CENT, USD
from netfaults import RedisServer
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Enforcer, Scope
from spendgate.errors import StorageError
from spendgate.stores.counters.redis import RedisStorage

pytestmark = pytest.mark.redis
BUDGET = [BudgetLimit.of(Scope("key", "restart"), "1d", USD)]


async def _admit(enforcer: Enforcer, rid: str) -> None:
    ticket = await enforcer.admit(EnforcementRequest(rid, BUDGET, (), CENT, 0))
    await enforcer.settle(ticket, CENT, 0)


async def test_first_admission_after_a_redis_restart_succeeds(tmp_path: Path) -> None:
    with RedisServer(workdir=tmp_path) as redis:
        storage = RedisStorage.from_url(redis.url, prefix="restart")
        enforcer = Enforcer(storage)
        try:
            # Eight connections in the pool, all in use once.
            await asyncio.gather(*(_admit(enforcer, f"before-{i}") for i in range(8)))
            await asyncio.to_thread(redis.restart)
            await _admit(enforcer, "first-after")
            await asyncio.gather(*(_admit(enforcer, f"after-{i}") for i in range(8)))
            await asyncio.to_thread(redis.stop)
            with pytest.raises(StorageError):  # really down: budgets fail closed
                await _admit(enforcer, "while-down")
        finally:
            await storage.close()

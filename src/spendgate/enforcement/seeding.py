"""Seeding: cold budget counters set from the ledger before anything is admitted against them.

After a restart, a Redis flush or on a new instance, a budget counter may not exist. When
a :data:`SeedLoader` is configured the storage reports such a counter as *cold* instead of
reading it as zero; it is then **set** (never incremented) to the ledger's spend for its
period, and the admission runs again (DESIGN §1.6). One loader call per cold counter per
process, however many requests wait on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from spendgate.core.periods import Period
from spendgate.enforcement.limits import BudgetLimit
from spendgate.enforcement.planning import BudgetPlan, PlannedBudget
from spendgate.errors import StorageError
from spendgate.stores.counters.base import AdmitOp, AdmitResult, Storage

__all__ = ["CounterSeeder", "SeedLoader"]

SeedLoader = Callable[[BudgetLimit, Period], Awaitable[int]]
"""Returns a cold counter's spend for a period, from the ledger (nano-USD)."""


class CounterSeeder:
    """Seeds cold budget counters of one storage through one loader."""

    __slots__ = ("_seeding", "loader", "storage")

    def __init__(self, storage: Storage, loader: SeedLoader) -> None:
        self.storage = storage
        self.loader = loader
        self._seeding: dict[str, asyncio.Future[None]] = {}

    async def readmit(
        self, op: AdmitOp, result: AdmitResult, planned: list[BudgetPlan], now_ms: int
    ) -> AdmitResult:
        """Seed the cold budget counters of a refused admission and admit again (up to three times)."""
        for _ in range(3):
            if result.status != "cold":
                break
            await self.seed(planned, result.cold, now_ms)
            result = await self.storage.admit(op)
        return result

    async def seed(self, planned: Sequence[BudgetPlan], cold: Sequence[int], now_ms: int) -> None:
        """Seed the counters of ``planned`` at the indexes ``cold``."""
        for i in cold:
            p = PlannedBudget(*planned[i])
            key = p.op.key
            task = self._seeding.get(key)
            if task is None:
                task = self._seeding[key] = asyncio.ensure_future(self._seed_one(p, now_ms))
                task.add_done_callback(lambda _t, k=key: self._seeding.pop(k, None))  # type: ignore[misc]
            await asyncio.shield(task)

    async def set_from_ledger(self, p: PlannedBudget, now_ms: int) -> bool:
        """Set an existing counter to the ledger's spend of its period, keeping its
        reservations (:meth:`Storage.set_spend`); False if it does not exist."""
        return await self.storage.set_spend(p.op.key, p.op.field, await self._ledger_spend(p), now_ms)

    async def _ledger_spend(self, p: PlannedBudget) -> int:
        try:
            return await self.loader(p.budget, p.period)
        except Exception as exc:
            raise StorageError(
                f"could not read {p.budget.scope} {p.budget.window.name} from the ledger"
            ) from exc

    async def _seed_one(self, p: PlannedBudget, now_ms: int) -> None:
        amount = await self._ledger_spend(p)
        # A rolling window's ledger spend goes into the current bucket: it then leaves the
        # window late, never early (conservative).
        await self.storage.seed(p.op.key, {p.op.field: amount, "r": 0}, p.op.ttl_ms, now_ms)

"""Redis counters: many gateway processes on many hosts share one Redis.

Every operation is one Lua script (``lua/*.lua``, shipped as package data), registered once
per client and run with EVALSHA: one round trip per admission, per settlement, per release.
Keys go in KEYS and all share the hash tag ``{prefix}`` so a script's keys are in one
Redis Cluster slot. Numbers go in ARGV (for admit and settle, as one JSON array: each
argument costs the client a few µs to encode, and the script decodes the array faster
than Redis hands over separate arguments); time is the caller's clock (``now_ms``), never Redis ``TIME`` (see
``docs/enforcement.md`` for clock skew).

Any Redis or connection error is raised as :class:`~spendgate.errors.StorageError`; the
admission applies the fail-open / fail-closed policy. Before that, a command that fails
because its pooled connection is dead (Redis restarted, a proxy or load balancer dropped
it) is retried once on a fresh connection, so a Redis restart costs no request an error;
only a Redis that stays unreachable does. A timeout is not retried (the wait is bounded by
``socket_timeout``). Every script is safe to run twice: a reservation, parallel slot, seed,
renewal or settlement by the same request id replaces itself; only a request-rate counter
can count a retried admission twice (conservative).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from spendgate.errors import StorageError
from spendgate.stores.counters.base import (
    AdmitOp,
    AdmitResult,
    BudgetOp,
    BudgetState,
    RateOp,
    RateState,
    SettleOp,
    Storage,
)

__all__ = ["RedisStorage", "load_script"]

_STATUS: tuple[Any, ...] = ("ok", "budget", "rate", "cold")
_SCRIPTS = ("admit", "settle", "read", "renew", "seed", "set_spend")


def load_script(name: str) -> str:
    """The source of a script: ``common.lua`` (helpers) followed by ``<name>.lua``."""
    folder = resources.files("spendgate.stores.counters").joinpath("lua")
    common = folder.joinpath("common.lua").read_text("utf-8")
    return common + "\n" + folder.joinpath(f"{name}.lua").read_text("utf-8")


def _load_all() -> dict[str, str]:
    return {name: load_script(name) for name in _SCRIPTS}


_SOURCES: dict[str, str] | None = None


class RedisStorage(Storage):
    """Counters in Redis (``redis.asyncio``).

    Args:
        client: a ``redis.asyncio.Redis`` (``decode_responses`` must be False).
        prefix: start of every key and the Cluster hash tag ``{prefix}``.
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str = "sg") -> None:
        global _SOURCES
        if _SOURCES is None:
            _SOURCES = _load_all()
        self.prefix = prefix
        self.client = client
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in _SOURCES.items()
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sg",
        socket_timeout: float = 2.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 64,
        reconnect_retries: int = 1,
        health_check_interval: float = 30.0,
        **options: Any,
    ) -> RedisStorage:
        """Connect lazily to ``redis://host:port/db`` (the first call opens the connection).

        Up to ``max_connections`` calls run at once; more wait (up to ``socket_timeout``) for
        a free connection rather than fail. A command whose connection turns out dead is
        retried ``reconnect_retries`` times on a new connection (after a few ms); a
        connection idle longer than ``health_check_interval`` seconds is pinged before use.
        """
        options.setdefault(
            "retry",
            Retry(
                ExponentialWithJitterBackoff(cap=0.1, base=0.005),
                reconnect_retries,
                supported_errors=(RedisConnectionError,),
            ),
        )
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            health_check_interval=health_check_interval,
            **options,
        )
        return cls(aioredis.Redis(connection_pool=pool), prefix=prefix)

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[int | str | bytes]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis {name} script failed: {exc}") from exc

    async def admit(self, op: AdmitOp) -> AdmitResult:
        keys: list[str] = []
        # Numbers (and field names) travel as one JSON array, the request id (free text) in
        # its own argument; admit.lua decodes them (see common.lua, unpack_argv).
        nums: list[int | str] = [
            op.now_ms,
            op.lease_ms,
            "-",
            1 if op.strict else 0,
            len(op.budgets),
            len(op.rates),
        ]
        for b in op.budgets:
            keys += (b.key, b.lease_key)
            nums += (
                b.max_nanos,
                b.estimate_nanos,
                b.field,
                b.bucket_ms,
                b.oldest_bucket,
                b.ttl_ms,
                1 if b.require_seed else 0,
            )
        for r in op.rates:
            keys.append(r.key)
            nums += (r.kind, r.limit, r.amount, r.window_ms, r.ttl_ms)
        out = await self._run("admit", keys, [op.request_id, orjson.dumps(nums)])
        nb, nr = len(op.budgets), len(op.rates)
        budgets = tuple(BudgetState(out[1 + 3 * i], out[2 + 3 * i], out[3 + 3 * i]) for i in range(nb))
        status = _STATUS[out[0]]
        if status == "cold":
            return AdmitResult("cold", budgets, (), tuple(int(i) for i in out[1 + 3 * nb :]))
        base = 1 + 3 * nb
        rates = tuple(
            RateState(out[base + 3 * j], out[base + 1 + 3 * j], out[base + 2 + 3 * j]) for j in range(nr)
        )
        return AdmitResult(status, budgets, rates)

    async def settle(self, op: SettleOp) -> tuple[int, ...] | None:
        keys: list[str] = [op.done_key]
        nums: list[int | str] = [
            op.now_ms,
            "-",
            op.done_ttl_ms,
            1 if op.settle else 0,
            op.cost_nanos,
            op.real_tokens,
            len(op.budgets),
            len(op.rates),
        ]
        for b in op.budgets:
            keys += (b.key, b.lease_key)
            nums += (b.field, b.ttl_ms, 1 if b.require_seed else 0, b.bucket_ms, b.oldest_bucket)
        for r in op.rates:
            keys.append(r.key)
            nums += (r.kind, r.amount, r.window_index)
        out = await self._run("settle", keys, [op.request_id, orjson.dumps(nums)])
        return tuple(int(x) for x in out[1:]) if out else None

    async def renew(
        self,
        request_id: str,
        now_ms: int,
        lease_ms: int,
        keys: Sequence[str],
        *,
        ttl_ms: int = 0,
        counters: Sequence[str] = (),
    ) -> int:
        if not keys:
            return 0
        if ttl_ms <= 0:
            return int(await self._run("renew", keys, [now_ms, lease_ms, request_id]))
        args: list[int | str] = [now_ms, lease_ms, request_id, ttl_ms, len(keys)]
        return int(await self._run("renew", [*keys, *counters], args))

    async def read(
        self, now_ms: int, budgets: Sequence[BudgetOp], rates: Sequence[RateOp]
    ) -> tuple[tuple[BudgetState | None, ...], tuple[RateState, ...]]:
        keys: list[str] = []
        args: list[int | str] = [now_ms, len(budgets), len(rates)]
        for b in budgets:
            keys += (b.key, b.lease_key)
            args += (b.bucket_ms, b.oldest_bucket)
        for r in rates:
            keys.append(r.key)
            args += (1 if r.kind == 1 else 0, r.window_ms)
        out = await self._run("read", keys, args)
        bout = tuple(
            BudgetState(out[4 * i + 1], out[4 * i + 2], out[4 * i + 3]) if out[4 * i] else None
            for i in range(len(budgets))
        )
        base = 4 * len(budgets)
        rout = tuple(
            RateState(out[base + 3 * j], out[base + 3 * j + 1], out[base + 3 * j + 2])
            for j in range(len(rates))
        )
        return bout, rout

    async def seed(self, key: str, values: Mapping[str, int], ttl_ms: int, now_ms: int) -> bool:
        args: list[int | str] = [ttl_ms]
        for name, value in values.items():
            args += (name, value)
        return bool(await self._run("seed", [key], args))

    async def set_spend(self, key: str, field: str, value: int, now_ms: int) -> bool:
        return bool(await self._run("set_spend", [key], [field, value]))

    async def clear(self) -> None:
        try:
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=f"{{{self.prefix}}}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                await self.client.unlink(*batch)
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis clear failed: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()

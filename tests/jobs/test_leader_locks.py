"""Leader locks: one holder per name on every backend; leases lapse; a dead leader frees its lock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from job_backends import REDIS_URL, redis_client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.jobs import LeaderLock, LocalLock, PostgresLock, lock_for
from spendgate.jobs.locks import _advisory_key
from spendgate.jobs.redis_lock import RedisLock
from spendgate.stores.database import create_engine

MakeLock = Callable[[], LeaderLock]


async def test_one_holder_per_name(make_lock: MakeLock, lock_name: str) -> None:
    a, b = make_lock(), make_lock()
    assert await a.acquire(lock_name, 5)
    assert not await b.acquire(lock_name, 5)
    assert await a.acquire(lock_name, 5)  # the holder acquiring again keeps its lease
    assert await a.renew(lock_name, 5)
    assert not await b.renew(lock_name, 5)  # renewing what one does not hold fails
    assert await b.acquire(lock_name + "-other", 5)  # names are independent

    await a.release(lock_name)
    assert not await a.renew(lock_name, 5)
    assert await b.acquire(lock_name, 5)
    assert not await a.acquire(lock_name, 5)
    await b.release(lock_name)
    await b.release(lock_name)  # releasing twice is harmless


async def test_close_releases_every_lease(make_lock: MakeLock, lock_name: str) -> None:
    a, b = make_lock(), make_lock()
    assert await a.acquire(lock_name, 5)
    assert await a.acquire(lock_name + "-2", 5)
    await a.close()
    assert await b.acquire(lock_name, 5)
    assert await b.acquire(lock_name + "-2", 5)


async def test_local_lease_lapses_unless_renewed(lock_name: str) -> None:
    a, b = LocalLock(), LocalLock()
    try:
        assert await a.acquire(lock_name, 0.05)
        await asyncio.sleep(0.08)
        assert await b.acquire(lock_name, 5)
        assert not await a.renew(lock_name, 5)
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
async def test_redis_lease_lapses_unless_renewed(lock_name: str) -> None:
    client = await redis_client()
    a, b = RedisLock(client, prefix="sgt-jobs:"), RedisLock(client, prefix="sgt-jobs:")
    try:
        assert await a.acquire(lock_name, 0.1)
        assert 0 < await client.pttl(f"sgt-jobs:{lock_name}") <= 100
        assert await a.renew(lock_name, 5)
        assert await client.pttl(f"sgt-jobs:{lock_name}") > 1000  # renewal replaced the TTL
        assert await a.acquire(lock_name + "-short", 0.05)
        await asyncio.sleep(0.08)
        assert await b.acquire(lock_name + "-short", 5)
        assert not await a.renew(lock_name + "-short", 5)
        await a.release(lock_name + "-short")  # not ours any more: b's key stays
        assert await client.exists(f"sgt-jobs:{lock_name}-short") == 1
    finally:
        await a.close()
        await b.close()
        await client.aclose()


@pytest.mark.postgres
async def test_postgres_lock_dies_with_its_session(pg_engine: AsyncEngine, lock_name: str) -> None:
    a, b = PostgresLock(pg_engine), PostgresLock(pg_engine)
    try:
        assert await a.acquire(lock_name, 5)
        assert not await b.acquire(lock_name, 5)
        # The leader's session ends (a crash, a network cut noticed by the server).
        key = _advisory_key(lock_name)
        async with pg_engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND classid = :hi AND objid = :lo AND pid <> pg_backend_pid()"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            )
        assert killed == 1
        for _ in range(50):  # the server frees the lock once the backend has exited
            if await b.acquire(lock_name, 5):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the lock of a terminated session was not freed")
        assert not await a.renew(lock_name, 5)
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_lock_for_picks_the_backend(pg_engine: AsyncEngine, tmp_path: Path) -> None:
    sqlite = create_engine(f"sqlite+aiosqlite:///{tmp_path}/jobs.db")
    locks = [
        lock_for(None, None),
        lock_for(sqlite, None),
        lock_for(pg_engine, None),
        lock_for(pg_engine, REDIS_URL),
    ]
    try:
        assert [type(lock) for lock in locks] == [LocalLock, LocalLock, PostgresLock, RedisLock]
    finally:
        for lock in locks:
            await lock.close()
        await sqlite.dispose()


async def test_local_leases_are_per_database() -> None:
    """Two gateways of one process on different databases each lead their own jobs; two on
    the same database exclude each other."""
    a, b, c = LocalLock("sqlite:///a.db"), LocalLock("sqlite:///b.db"), LocalLock("sqlite:///a.db")
    try:
        assert await a.acquire("job", 60) and await b.acquire("job", 60)
        assert not await c.acquire("job", 60)
        await a.release("job")
        assert await c.acquire("job", 60)
    finally:
        for lock in (a, b, c):
            await lock.close()

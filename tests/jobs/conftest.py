"""Fixtures for the job runner: leader-lock contenders on each real backend.

``make_lock`` builds new contenders (each one a separate would-be leader) on the backend
of ``lock_backend``, which parametrizes every test that uses it: ``local`` (the process),
``redis`` and ``postgres`` (the real servers of ``job_backends``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from job_backends import postgres_engine, redis_client
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.jobs import LeaderLock, LocalLock, PostgresLock
from spendgate.jobs.redis_lock import RedisLock

LOCK_BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=LOCK_BACKENDS)
def lock_backend(request: pytest.FixtureRequest) -> str:
    """Every test that uses ``make_lock`` runs once per backend."""
    return str(request.param)


@pytest.fixture
def lock_name() -> str:
    """A lock name no other test (or test run) uses."""
    return f"sgt-job-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def pg_engine() -> AsyncIterator[AsyncEngine]:
    engine = await postgres_engine()
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def make_lock(lock_backend: str) -> AsyncIterator[Callable[[], LeaderLock]]:
    """A factory of contenders on ``lock_backend``; every one is closed after the test."""
    made: list[LeaderLock] = []
    prefix = f"sgt-jobs-{uuid.uuid4().hex[:8]}:"
    client = await redis_client() if lock_backend == "redis" else None
    engine = await postgres_engine() if lock_backend == "postgres" else None

    def make() -> LeaderLock:
        lock: LeaderLock
        if client is not None:
            lock = RedisLock(client, prefix=prefix)
        elif engine is not None:
            lock = PostgresLock(engine)
        else:
            lock = LocalLock()
        made.append(lock)
        return lock

    try:
        yield make
    finally:
        for lock in made:
            await lock.close()
        if client is not None:
            await client.aclose()
        if engine is not None:
            await engine.dispose()

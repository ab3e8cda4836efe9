"""The servers the job tests run on, and how to reach them (fail, never skip, when down).

Redis comes from ``$SPENDGATE_TEST_REDIS_URL`` (default db 4), PostgreSQL from
``$SPENDGATE_TEST_POSTGRES_URL`` (advisory locks need no schema, so no migration). An
unreachable server fails the test, unless SPENDGATE_TEST_SKIP_REDIS=1 /
SPENDGATE_TEST_SKIP_POSTGRES=1 skips it on purpose in a local run.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import create_engine

__all__ = ["PG_URL", "REDIS_URL", "postgres_engine", "redis_client"]

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
PG_URL = os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def redis_client() -> aioredis.Redis:
    """A pinged client on REDIS_URL (close it with ``aclose``)."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=15, socket_connect_timeout=5)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:
        await client.aclose()
        if os.environ.get("SPENDGATE_TEST_SKIP_REDIS") == "1":
            pytest.skip("SPENDGATE_TEST_SKIP_REDIS=1")
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc!r}). Start it, point "
            "SPENDGATE_TEST_REDIS_URL at one, or set SPENDGATE_TEST_SKIP_REDIS=1.",
            pytrace=False,
        )
    return client


async def postgres_engine() -> AsyncEngine:
    """An engine on PG_URL that has answered once (dispose it)."""
    engine = create_engine(PG_URL)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        await engine.dispose()
        if os.environ.get("SPENDGATE_TEST_SKIP_POSTGRES") == "1":
            pytest.skip("SPENDGATE_TEST_SKIP_POSTGRES=1")
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(PG_URL).render_as_string(hide_password=True)} "
            f"({exc!r}). Start it, point SPENDGATE_TEST_POSTGRES_URL at one, or set "
            "SPENDGATE_TEST_SKIP_POSTGRES=1.",
            pytrace=False,
        )
    return engine

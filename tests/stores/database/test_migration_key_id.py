"""Migration 0002 gives every existing key a stable id equal to its current hash, on both
databases, so windows and spend events recorded before the upgrade still name it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from db_helpers import database_name
from spendgate.stores.database import create_engine, upgrade

pytestmark = pytest.mark.asyncio


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    if os.environ.get("SPENDGATE_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("SPENDGATE_TEST_SKIP_POSTGRES=1")
    base = os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    name = database_name("mig")
    conn = await asyncpg.connect(_dsn(base))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(_dsn(base))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_existing_keys_get_their_hash_as_stable_id(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        await upgrade(engine, "0001")
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            for token in ("a" * 64, "b" * 64):
                await conn.execute(
                    text(
                        "INSERT INTO virtual_keys (token, key_prefix, blocked, created_at, updated_at) "
                        "VALUES (:t, 'sk-…', false, :now, :now)"
                    ),
                    {"t": token, "now": now},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT token, key_id FROM virtual_keys ORDER BY token"))).all()
        assert [tuple(r) for r in rows] == [("a" * 64, "a" * 64), ("b" * 64, "b" * 64)]
        with pytest.raises(IntegrityError):  # the stable id is unique
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE virtual_keys SET key_id = :a"), {"a": "a" * 64})
    finally:
        await engine.dispose()

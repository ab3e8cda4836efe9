"""The fixture of the migration tests: an engine on an empty database (no schema yet),
SQLite and then PostgreSQL (a database of its own, dropped afterwards)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import database_name
from spendgate.stores.database import create_engine


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database (no schema yet)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        await engine.dispose()
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
    engine = create_engine(make_url(base).set(database=name))
    try:
        yield engine
    finally:
        await engine.dispose()
        conn = await asyncpg.connect(_dsn(base))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

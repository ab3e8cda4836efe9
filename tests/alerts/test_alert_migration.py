"""Migration 0007 on an empty database, both ways: up from 0006 creates the three alert
tables (with the decision row's unique key), down drops them and leaves 0006's schema."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from alembic import command
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import database_name
from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.migrate import alembic_config

TABLES = {"alerts", "alert_outbox", "alert_deliveries"}


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        yield engine
        await engine.dispose()
        return
    if os.environ.get("SPENDGATE_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("SPENDGATE_TEST_SKIP_POSTGRES=1")
    base = make_url(
        os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    )
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = database_name("alerts_mig")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    engine = create_engine(base.set(database=name))
    try:
        yield engine
    finally:
        await engine.dispose()
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _unique_indexes(connection: Connection, table: str) -> dict[str, list[str | None]]:
    return {i["name"] or "": i["column_names"] for i in inspect(connection).get_indexes(table) if i["unique"]}


def _downgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0006")


async def test_0007_up_and_down(empty: AsyncEngine) -> None:
    await upgrade(empty, "0006")
    async with empty.connect() as conn:
        before = await conn.run_sync(_tables)
    assert not TABLES & before
    await upgrade(empty)
    async with empty.connect() as conn:
        assert TABLES <= await conn.run_sync(_tables)
        unique = await conn.run_sync(_unique_indexes, "alerts")
    assert unique["uq_alerts_decision"] == [
        "kind",
        "scope_type",
        "scope_id",
        "window",
        "period_start",
        "threshold",
    ]
    async with empty.begin() as conn:
        await conn.run_sync(_downgrade)
    async with empty.connect() as conn:
        assert await conn.run_sync(_tables) == before

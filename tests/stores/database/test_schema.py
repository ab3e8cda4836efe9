from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import create_engine, masked_url, schema_status, upgrade
from spendgate.stores.database.engine import database_url

TABLES = {
    "budgets",
    "budget_windows",
    "organizations",
    "organization_memberships",
    "teams",
    "team_memberships",
    "users",
    "end_customers",
    "virtual_keys",
    "tags",
    "spend_events",
    "spend_rollups",
    "managed_objects",
    "alembic_version",
}


@pytest.mark.asyncio
async def test_migrated_schema_is_at_head(engine: AsyncEngine) -> None:
    status = await schema_status(engine)
    assert status.current == status.head and status.up_to_date
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        columns = await conn.run_sync(
            lambda c: {col["name"]: col for col in inspect(c).get_columns("spend_events")}
        )
    assert TABLES <= tables
    for name in ("input_tokens", "output_tokens", "cost_nanos", "cost_input_nanos", "seconds_micros"):
        assert "BIGINT" in str(columns[name]["type"]).upper()
    assert "messages" in columns and "api_key" in columns


@pytest.mark.asyncio
async def test_upgrade_is_idempotent_and_status_before(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    before = await schema_status(engine)
    assert before.current is None and not before.up_to_date
    await upgrade(engine)
    await upgrade(engine)
    assert (await schema_status(engine)).up_to_date
    await engine.dispose()


def test_url_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        masked_url("postgresql://bob:secret@db:5432/ledger") == "postgresql+asyncpg://bob:***@db:5432/ledger"
    )
    monkeypatch.delenv("SPENDGATE_DATABASE_URL", raising=False)
    assert database_url() == "sqlite+aiosqlite:///./spendgate.db"
    monkeypatch.setenv("SPENDGATE_DATABASE_URL", "sqlite:///x.db")
    assert database_url() == "sqlite:///x.db"
    assert database_url("postgresql://h/db") == "postgresql://h/db"
    with pytest.raises(ValueError, match="unsupported database"):
        create_engine("mysql://h/db")


@pytest.mark.asyncio
async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    await engine.dispose()

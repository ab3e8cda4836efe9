"""Migration 0005 (the managed_objects table, issue #12) upgrades and downgrades on both
databases, with its indexes, and leaves the tables before it untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from migration_helpers import downgrade
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import schema_status, upgrade

pytestmark = pytest.mark.asyncio

INDEXES = {
    "ix_managed_objects_poll": ["kind", "settled_at", "created_at", "id"],
    "ix_managed_objects_owner": ["api_key", "kind", "created_at", "id"],
    "ix_managed_objects_team": ["team_id", "kind", "created_at", "id"],
}


def _shape(connection: Connection) -> tuple[set[str], dict[str, list[str]], dict[str, str]]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if "managed_objects" not in tables:
        return tables, {}, {}
    indexes = {
        str(i["name"]): [str(c) for c in i["column_names"]] for i in inspector.get_indexes("managed_objects")
    }
    columns = {c["name"]: str(c["type"]).upper() for c in inspector.get_columns("managed_objects")}
    return tables, indexes, columns


async def test_upgrade_and_downgrade_0005(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0004")
    async with fresh_engine.connect() as conn:
        before, _, _ = await conn.run_sync(_shape)
    assert "managed_objects" not in before

    await upgrade(fresh_engine, "0005")
    assert (await schema_status(fresh_engine)).current == "0005"
    async with fresh_engine.connect() as conn:
        tables, indexes, columns = await conn.run_sync(_shape)
    assert tables == before | {"managed_objects"}
    assert {name: indexes[name] for name in INDEXES} == INDEXES
    for money in ("reserved_nanos", "cost_nanos", "requests_total", "bytes"):
        assert "BIGINT" in columns[money]

    # A row with only the required fields gets the server defaults.
    now = datetime.now(UTC)
    async with fresh_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO managed_objects (id, kind, api, status, created_at, updated_at) "
                "VALUES ('batch_sg1', 'batch', 'openai', 'validating', :now, :now)"
            ),
            {"now": now},
        )
    async with fresh_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT requests_total, reserved_nanos, cost_nanos, unpriced, stale, settled_at "
                    "FROM managed_objects"
                )
            )
        ).one()
    assert tuple(row) == (0, 0, None, False, False, None)

    async with fresh_engine.begin() as conn:
        await conn.run_sync(downgrade, "0004")
    async with fresh_engine.connect() as conn:
        after_down, _, _ = await conn.run_sync(_shape)
    assert after_down == before
    assert (await schema_status(fresh_engine)).current == "0004"

    await upgrade(fresh_engine, "0005")
    async with fresh_engine.connect() as conn:
        again = await conn.run_sync(_shape)
    assert again == (tables, indexes, columns)

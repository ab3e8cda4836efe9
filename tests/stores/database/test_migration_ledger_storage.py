"""Migration 0003 (PostgreSQL storage for ledger ingest and reports) and the models
agree with the migrated schema, on both databases."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from migration_helpers import downgrade
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import upgrade
from spendgate.stores.database.models import metadata

pytestmark = pytest.mark.asyncio


async def _storage(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        options = (
            await conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'spend_rollups'"))
        ).scalar_one()
        indexes: dict[str, str] = dict(
            (
                await conn.execute(
                    text(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN "
                        "('ix_spend_events_occurred_at', 'ix_spend_rollups_report')"
                    )
                )
            ).all()
        )
        aggregate = (
            await conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'spendgate_sum'"))
        ).scalar_one()
    return {"options": options or [], "indexes": indexes, "aggregate": aggregate}


async def test_upgrade_and_downgrade_0003(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0002")
    await upgrade(fresh_engine)
    if fresh_engine.dialect.name != "postgresql":  # nothing to do on SQLite, both ways
        async with fresh_engine.begin() as conn:
            await conn.run_sync(downgrade, "0002")
        await upgrade(fresh_engine)
        return
    after = await _storage(fresh_engine)
    assert after["options"] == ["fillfactor=70"]
    assert "USING brin (occurred_at)" in after["indexes"]["ix_spend_events_occurred_at"]
    assert (
        'USING btree (grain, scope_type, bucket, scope_id COLLATE "C", model COLLATE "C", '
        'provider COLLATE "C", deployment_id COLLATE "C")'
    ) in after["indexes"]["ix_spend_rollups_report"]
    assert after["aggregate"] == 1
    async with fresh_engine.connect() as conn:
        total = await conn.execute(
            text("SELECT spendgate_sum(x) FROM (VALUES (1::bigint), (NULL), (2)) v(x)")
        )
        assert total.scalar_one() == 3
        empty = await conn.execute(text("SELECT spendgate_sum(x) FROM (SELECT 1::bigint WHERE false) v(x)"))
        assert empty.scalar_one() is None  # like sum(): no rows, no total
    with pytest.raises(DBAPIError, match="out of range"):  # never wraps around
        async with fresh_engine.connect() as conn:
            await conn.execute(
                text("SELECT spendgate_sum(x) FROM (VALUES (9223372036854775807::bigint), (1)) v(x)")
            )

    async with fresh_engine.begin() as conn:
        await conn.run_sync(downgrade, "0002")
    before = await _storage(fresh_engine)
    assert before["options"] == [] and before["aggregate"] == 0
    assert "USING btree (occurred_at)" in before["indexes"]["ix_spend_events_occurred_at"]
    assert "ix_spend_rollups_report" not in before["indexes"]
    await upgrade(fresh_engine)
    assert await _storage(fresh_engine) == after


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    with warnings.catch_warnings():
        # Alembic cannot reflect expression indexes (ix_spend_rollups_report) on SQLite;
        # the PostgreSQL test above checks that one's definition.
        warnings.filterwarnings("ignore", message="autogenerate skipping", category=UserWarning)
        diff = compare_metadata(context, metadata)
    return [
        d
        for d in diff
        if "spend_events_p" not in repr(d)  # monthly partitions: made at run time, not models
        and "ix_spend_rollups_report" not in repr(d)
    ]


async def test_models_match_the_migrated_schema(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine)
    async with fresh_engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []
    if fresh_engine.dialect.name == "postgresql":
        storage = await _storage(fresh_engine)
        model = metadata.tables["spend_rollups"].dialect_options["postgresql"]["with"]
        assert storage["options"] == [f"{k}={v}" for k, v in model.items()]
        index = next(
            i for i in metadata.tables["spend_events"].indexes if i.name == "ix_spend_events_occurred_at"
        )
        assert (
            f"USING {index.dialect_options['postgresql']['using']} "
            in (storage["indexes"]["ix_spend_events_occurred_at"])
        )

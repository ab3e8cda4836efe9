"""Database helpers shared by test packages (a module with a unique name, not conftest)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database.models import metadata


async def clear_database(engine: AsyncEngine) -> None:
    """Delete every row of every table, children first."""
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())

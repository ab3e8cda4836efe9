"""Database helpers shared by test packages (a module with a unique name, not conftest)."""

from __future__ import annotations

import os
import re
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database.models import metadata

DB_PREFIX_ENV = "SPENDGATE_TEST_DB_PREFIX"
"""Prefix of every PostgreSQL database the suite creates (default ``spendgate``), so runs
sharing one server can tell theirs apart (and a clean-up can drop ``<prefix>_*``)."""
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,30}$")


def database_name(kind: str) -> str:
    """A fresh database name: ``<prefix>_<kind>_<pid>_<random>`` (at most 63 bytes)."""
    prefix = os.environ.get(DB_PREFIX_ENV) or "spendgate"
    if not _PREFIX.match(prefix):
        raise ValueError(f"${DB_PREFIX_ENV}={prefix!r}: use 1-31 lower-case letters, digits or _")
    return f"{prefix}_{kind}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


async def clear_database(engine: AsyncEngine) -> None:
    """Delete every row of every table, children first."""
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())

"""Fixtures for the management API: the admin app driven in-process over ASGI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from admin_helpers import Api, admin_client, copy_database
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import create_engine, upgrade


@pytest_asyncio.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    """The admin API on an empty database (SQLite, then PostgreSQL)."""
    async with admin_client(engine) as client:
        yield Api(client)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test that wants a private database."""
    path = tmp_path_factory.mktemp("admin-template") / "template.db"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return path


@pytest_asyncio.fixture
async def sqlite_engine(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(copy_database(sqlite_template, tmp_path / "admin.db"))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def sqlite_api(sqlite_engine: AsyncEngine) -> AsyncIterator[Api]:
    """The admin API on a private SQLite database (fast; for the role matrix)."""
    async with admin_client(sqlite_engine) as client:
        yield Api(client)

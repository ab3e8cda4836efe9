"""Shared fixtures: every storage test runs against SQLite (a temp file) and PostgreSQL.

PostgreSQL comes from ``$SPENDGATE_TEST_POSTGRES_URL`` (default: the CI service at
127.0.0.1:5432, database ``test``). A fresh database is created for the session and
dropped at the end. If PostgreSQL cannot be reached the tests **fail**; set
``SPENDGATE_TEST_SKIP_POSTGRES=1`` to skip them on purpose in a local run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import clear_database, database_name
from spendgate.stores.database import create_engine, upgrade

PG_URL = os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SKIP_PG = os.environ.get("SPENDGATE_TEST_SKIP_POSTGRES") == "1"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    if SKIP_PG:
        pytest.skip("SPENDGATE_TEST_SKIP_POSTGRES=1")
    name = database_name("test")

    async def create() -> None:
        conn = await asyncpg.connect(_dsn(PG_URL), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(_dsn(PG_URL), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(PG_URL).render_as_string(hide_password=True)} "
            f"({exc!r}). "
            "Start it, point SPENDGATE_TEST_POSTGRES_URL at one, or set SPENDGATE_TEST_SKIP_POSTGRES=1 "
            "to skip the PostgreSQL tests in a local run.",
            pytrace=False,
        )
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'spendgate.db'}"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database; the test runs once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an emptied, migrated database (each backend in turn)."""
    eng = create_engine(database_url)
    await clear_database(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    path.mkdir()
    return path

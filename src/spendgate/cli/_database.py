"""How the read-only commands reach the database directly (``spend report``, ``batches``).

One ``--database-url`` option, resolved the same way everywhere (the explicit URL, else
``$SPENDGATE_DATABASE_URL``, else ``./spendgate.db``), and one way to run a query with an
engine that is always disposed and whose failures become a one-line error. A read command
never creates a database: a SQLite file that does not exist is an error, not an empty file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.cli._output import fail

__all__ = ["DatabaseUrlOpt", "read_database"]

T = TypeVar("T")

DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Default $SPENDGATE_DATABASE_URL, else ./spendgate.db.",
        show_default=False,
    ),
]


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database file that does not exist, else None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # create_engine reports the bad URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = parsed.database
    return None if path is None or path.startswith("file:") or Path(path).exists() else path


def read_database(database_url: str | None, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` with an engine on the resolved database and return its result.

    Args:
        database_url: The ``--database-url`` given, or None for the default resolution.
        work: The queries to run; the engine is disposed afterwards in every case.

    Returns:
        What ``work`` returned.

    Raises:
        typer.Exit: With a one-line error (code 2) when the database cannot be reached or
            read, or has no such table (not migrated: ``spendgate db upgrade``).
    """
    from spendgate.stores.database import create_engine, masked_url
    from spendgate.stores.database import database_url as resolve

    url = resolve(database_url)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        fail(f"no database at {missing}: pass --database-url or set $SPENDGATE_DATABASE_URL")

    async def main() -> T:
        engine = create_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except DBAPIError as exc:
        hint = " (not migrated? run `spendgate db upgrade`)" if "table" in str(exc.orig) else ""
        fail(f"database {masked_url(url)}: {exc.orig}{hint}")
    except (OSError, ValueError, SQLAlchemyError) as exc:
        fail(str(exc))

"""``spendgate db``: migrate the database, show its schema revision, apply retention and
recompute the daily rollups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from spendgate.cli._output import console, fail

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["app"]

app = typer.Typer(
    help="Database schema: upgrade, status, spend-event retention, daily rollups.", no_args_is_help=True
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; default $SPENDGATE_DATABASE_URL, else sqlite+aiosqlite:///./spendgate.db.",
        show_default=False,
    ),
]
T = TypeVar("T")


def _on_database(database_url: str | None, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """``work`` on an engine of the database (disposed afterwards); a bad URL or an
    unreachable database is a one-line error, never a traceback."""
    from spendgate.stores.database import create_engine
    from spendgate.stores.database import database_url as resolve

    async def main() -> T:
        engine = create_engine(resolve(database_url))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    from sqlalchemy.exc import DBAPIError

    try:
        return asyncio.run(main())
    except DBAPIError as exc:  # e.g. a SQLite file that cannot be opened, a refused login
        fail(f"database error: {exc.orig}")
    except (OSError, ValueError) as exc:
        fail(str(exc))


@app.command()
def upgrade(database_url: DatabaseUrl = None, revision: str = "head") -> None:
    """Apply the schema migrations (and create the PostgreSQL spend-event partitions ahead)."""
    from spendgate.stores.database import schema_status
    from spendgate.stores.database import upgrade as run_upgrade

    async def work(engine: AsyncEngine) -> None:
        await run_upgrade(engine, revision)
        status = await schema_status(engine)
        console.print(
            f"{status.url}: at revision [bold]{status.current}[/] (head {status.head})", highlight=False
        )

    _on_database(database_url, work)


@app.command()
def status(database_url: DatabaseUrl = None) -> None:
    """Show the current and the newest schema revision. Exit code 1 when behind."""
    from spendgate.stores.database import schema_status

    s = _on_database(database_url, schema_status)
    console.print(f"database: {s.url}", highlight=False)
    console.print(f"current:  {s.current or '(empty: run `spendgate db upgrade`)'}", highlight=False)
    console.print(f"head:     {s.head}", highlight=False)
    console.print("up to date" if s.up_to_date else "[yellow]behind: run `spendgate db upgrade`[/]")
    if not s.up_to_date:
        raise typer.Exit(1)


@app.command()
def retention(
    keep: Annotated[str, typer.Option("--keep", help="spend_logs_retention, e.g. 90d, 12w, 6mo.")] = "90d",
    database_url: DatabaseUrl = None,
) -> None:
    """Drop spend-event partitions older than --keep (PostgreSQL); DELETE by time on SQLite.

    Rollups are kept, so reports over the dropped months stay exact.
    """
    from spendgate.stores.database import drop_expired_partitions

    async def work(engine: AsyncEngine) -> list[str]:
        return await drop_expired_partitions(engine, keep)

    dropped = _on_database(database_url, work)
    console.print(f"dropped: {', '.join(dropped) if dropped else 'nothing'}", highlight=False)


@app.command("rollup-days")
def rollup_days(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only the UTC days from this date (YYYY-MM-DD); default: every day."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Recompute the daily rollups from the hourly ones (sets them; safe to repeat).

    For daily rows that missed events: a gateway of a version before migration 0011 kept
    writing after the upgrade. Writers wait while it runs; readers do not.
    """
    from datetime import UTC, date, datetime

    from spendgate.ledger.repository import LedgerRepository

    try:
        day = None if since is None else date.fromisoformat(since)
    except ValueError:
        fail(f"--since: {since!r} is not a date like 2026-12-01")
    start = None if day is None else datetime.combine(day, datetime.min.time(), UTC)

    async def work(engine: AsyncEngine) -> int:
        return await LedgerRepository(engine).recompute_daily_rollups(start)

    rows = _on_database(database_url, work)
    console.print(f"daily rollup rows recomputed: {rows:,}", highlight=False)

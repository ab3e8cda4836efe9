"""Async engines for the two supported databases: SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from spendgate.errors import ConfigurationError

__all__ = ["DEFAULT_DATABASE_URL", "create_engine", "database_url", "is_postgres", "masked_url"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./spendgate.db"
ENV_VAR = "SPENDGATE_DATABASE_URL"


def database_url(explicit: str | None = None) -> str:
    """The URL to use: the explicit one, else ``$SPENDGATE_DATABASE_URL``, else the default."""
    return explicit or os.environ.get(ENV_VAR) or DEFAULT_DATABASE_URL


def _normalise(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Most often a file path given where a URL belongs: say what to write instead.
        raise ConfigurationError(
            f"{url!r} is not a database URL: for a SQLite file write sqlite+aiosqlite:///{url} "
            "(for PostgreSQL: postgresql://user:password@host:5432/database)"
        ) from None
    # Plain "postgresql://" and "sqlite://" URLs get the async drivers.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported database {parsed.drivername!r}: use sqlite+aiosqlite or postgresql+asyncpg"
        )
    return parsed


def is_postgres(engine_or_url: AsyncEngine | str | URL) -> bool:
    if isinstance(engine_or_url, AsyncEngine):
        return engine_or_url.dialect.name == "postgresql"
    return _normalise(engine_or_url).get_backend_name() == "postgresql"


def masked_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``."""
    return _normalise(url).render_as_string(hide_password=True)


def create_engine(
    url: str | URL | None = None,
    *,
    sqlite_busy_timeout_ms: int = 5000,
    connect_timeout: float | None = 10.0,
    command_timeout: float | None = None,
    pool_timeout: float | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``url`` (see :func:`database_url` for the default).

    SQLite runs in WAL mode with ``synchronous=NORMAL``, foreign keys on and a busy timeout,
    so readers never block the writer. PostgreSQL connections are pinged before use, so a
    database that went away and came back is reconnected to transparently.

    Waits for PostgreSQL are bounded, so an unreachable database (refused, or dropping
    packets) fails a caller instead of hanging it: ``connect_timeout`` for opening a
    connection, ``command_timeout`` for any one statement's answer (asyncpg cancels it),
    ``pool_timeout`` for a free pooled connection (SQLAlchemy's default, 30 s, when None).
    """
    parsed = _normalise(url or database_url())
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, **kwargs)
        timeout = int(sqlite_busy_timeout_ms)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={timeout}")
            cursor.close()

        return engine
    connect_args = dict(kwargs.pop("connect_args", None) or {})
    if connect_timeout is not None:
        connect_args.setdefault("timeout", connect_timeout)
    if command_timeout is not None:
        connect_args.setdefault("command_timeout", command_timeout)
    kwargs["connect_args"] = connect_args
    if pool_timeout is not None:
        kwargs.setdefault("pool_timeout", pool_timeout)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    return create_async_engine(parsed, **kwargs)

"""The BudgetManager's database store: budgets as rows of ``sdk_budgets`` in the spendgate
database (SQLite or PostgreSQL), shared by every process and machine that opens it.

Atomicity. Each change runs in one transaction that first *locks* the user's row with a
no-op ``UPDATE … RETURNING`` (PostgreSQL: a row lock; SQLite: the database write lock, taken
before anything is read, so a deferred transaction can never fail to upgrade its lock),
then applies the shared rules of :mod:`spendgate.sdk.budget_store` and writes the row
back. ``reserve`` decides with ONE conditional statement, ``UPDATE … SET reserved_nanos =
reserved_nanos + :worst WHERE current_cost_nanos + reserved_nanos + :worst <=
total_budget_nanos``, so no interleaving of machines can admit more than the budget.

Sync over async. LiteLLM's BudgetManager is synchronous, while spendgate's engines are async
(asyncpg, aiosqlite: the project has no sync PostgreSQL driver, and the engine factory owns
the URL rules, SQLite's WAL and busy timeout, and PostgreSQL's timeouts). So the store runs
one async engine on a private event loop in a daemon thread and each sync call waits for its
coroutine there: no new dependency, one code path for both databases, and callable from
any thread, including one that runs its own event loop. After a ``fork`` the child starts
its own loop and engine (the parent's connections are never touched).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from spendgate.errors import ConfigurationError, StorageError
from spendgate.sdk.budget_store import (
    BudgetRecord,
    Held,
    ReserveOutcome,
    held_from_json,
    held_to_json,
    prepare,
)
from spendgate.stores.database.engine import create_engine, masked_url
from spendgate.stores.database.models import SdkBudget

__all__ = ["DatabaseBudgetStore"]

T = TypeVar("T")
_TABLE = cast(Table, SdkBudget.__table__)
_C = _TABLE.c


def _record(row: Row[Any]) -> BudgetRecord:
    return BudgetRecord(
        total_budget_nanos=row.total_budget_nanos,
        duration=row.duration,
        duration_days=row.duration_days,
        calendar=bool(row.calendar),
        timezone=row.timezone,
        created_at=row.created_at,
        last_updated_at=row.last_updated_at,
        period_start=row.period_start,
        current_cost_nanos=row.current_cost_nanos,
        reserved_nanos=row.reserved_nanos,
        model_cost_nanos={str(k): int(v) for k, v in (row.model_cost or {}).items()},
        reservations=held_from_json(row.reservations),
    )


def _values(record: BudgetRecord) -> dict[str, Any]:
    return {
        "total_budget_nanos": record.total_budget_nanos,
        "duration": record.duration,
        "duration_days": record.duration_days,
        "calendar": record.calendar,
        "timezone": record.timezone,
        "period_start": record.period_start,
        "current_cost_nanos": record.current_cost_nanos,
        "reserved_nanos": record.reserved_nanos,
        "model_cost": dict(record.model_cost_nanos),
        "reservations": held_to_json(record.reservations),
        "created_at": record.created_at,
        "last_updated_at": record.last_updated_at,
    }


class DatabaseBudgetStore:
    """Budgets of one project in the ``sdk_budgets`` table (see the module doc).

    Args:
        url: the spendgate database (``sqlite+aiosqlite:///…``, ``postgresql://…``), migrated
            to revision 0006 or later (``spendgate db upgrade``).
        project: the project whose users this store reads and writes.
        timeout: seconds a call may wait for the database before raising
            :class:`~spendgate.errors.StorageError`.
    """

    def __init__(self, url: str, project: str, *, timeout: float = 60.0) -> None:
        self.url = url
        self.project = project
        self.timeout = timeout
        self._guard = threading.Lock()
        self._pid = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: AsyncEngine | None = None

    # -- the private loop --------------------------------------------------------------------

    def _start(self) -> tuple[asyncio.AbstractEventLoop, AsyncEngine]:
        with self._guard:
            if self._pid != os.getpid() or self._loop is None or self._engine is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="spendgate-budget-db", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._engine = create_engine(self.url, pool_size=2, max_overflow=2)
            return self._loop, self._engine

    def _run(self, work: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
        loop, engine = self._start()
        future = asyncio.run_coroutine_threadsafe(work(engine), loop)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            future.cancel()
            raise StorageError(f"{masked_url(self.url)}: no answer within {self.timeout:g} s") from None
        except DBAPIError as exc:
            text = str(exc.orig)
            if "sdk_budgets" in text and ("does not exist" in text or "no such table" in text):
                raise ConfigurationError(
                    f"{masked_url(self.url)} has no sdk_budgets table: run `spendgate db upgrade`"
                ) from None
            raise StorageError(f"{masked_url(self.url)}: {text}") from exc
        except (OSError, SQLAlchemyError) as exc:
            raise StorageError(f"{masked_url(self.url)}: {exc}") from exc

    def close(self) -> None:
        """Dispose of the engine and stop the loop thread (the store restarts them if used)."""
        with self._guard:
            loop, thread, engine = self._loop, self._thread, self._engine
            self._loop = self._thread = self._engine = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if engine is not None:
            asyncio.run_coroutine_threadsafe(engine.dispose(), loop).result(self.timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout)
        loop.close()

    # -- statements --------------------------------------------------------------------------

    def _key(self, user: str) -> Any:
        return (_C.project == self.project) & (_C.user_id == user)

    async def _lock(self, conn: AsyncConnection, user: str) -> BudgetRecord:
        """The user's row, locked until the transaction ends (a no-op UPDATE … RETURNING)."""
        statement = (
            update(_TABLE)
            .where(self._key(user))
            .values(reserved_nanos=_C.reserved_nanos)
            .returning(*_TABLE.columns)
        )
        row = (await conn.execute(statement)).first()
        if row is None:
            raise KeyError(user)
        return _record(row)

    async def _write(self, conn: AsyncConnection, user: str, record: BudgetRecord) -> None:
        await conn.execute(update(_TABLE).where(self._key(user)).values(**_values(record)))

    # -- BudgetStore -------------------------------------------------------------------------

    def get(self, user: str, now: datetime) -> BudgetRecord | None:
        """The user's record as of ``now`` (its calendar period rolled, not written)."""

        async def work(engine: AsyncEngine) -> BudgetRecord | None:
            async with engine.connect() as conn:
                row = (await conn.execute(select(_TABLE).where(self._key(user)))).first()
            return None if row is None else _record(row)

        record = self._run(work)
        if record is not None:
            prepare(record, now)
        return record

    def all(self, now: datetime) -> dict[str, BudgetRecord]:
        """Every user's record as of ``now``."""

        async def work(engine: AsyncEngine) -> dict[str, BudgetRecord]:
            async with engine.connect() as conn:
                rows = (await conn.execute(select(_TABLE).where(_C.project == self.project))).all()
            return {row.user_id: _record(row) for row in rows}

        records = self._run(work)
        for record in records.values():
            prepare(record, now)
        return records

    def create(self, user: str, record: BudgetRecord, *, replace: bool) -> BudgetRecord:
        """Store a new budget; an existing one is kept unless ``replace``."""
        values = {"project": self.project, "user_id": user, **_values(record)}

        async def work(engine: AsyncEngine) -> BudgetRecord:
            insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
            statement = insert(_TABLE).values(**values)
            if replace:
                changed = {k: v for k, v in values.items() if k not in ("project", "user_id")}
                statement = statement.on_conflict_do_update(
                    index_elements=["project", "user_id"], set_=changed
                )
            else:
                statement = statement.on_conflict_do_nothing(index_elements=["project", "user_id"])
            async with engine.begin() as conn:
                await conn.execute(statement)
                row = (await conn.execute(select(_TABLE).where(self._key(user)))).one()
            return _record(row)

        return self._run(work)

    def mutate(self, user: str, now: datetime, change: Callable[[BudgetRecord], T]) -> T:
        """Lock the row, roll and sweep, apply ``change``, write (see ``BudgetStore``)."""

        async def work(engine: AsyncEngine) -> T:
            async with engine.begin() as conn:
                record = await self._lock(conn, user)
                prepare(record, now)
                result = change(record)
                await self._write(conn, user, record)
            return result

        return self._run(work)

    def reserve(self, user: str, reservation_id: str, held: Held, now: datetime) -> ReserveOutcome:
        """Reserve with one conditional UPDATE (see the module doc)."""
        amount = held.amount_nanos

        async def work(engine: AsyncEngine) -> ReserveOutcome:
            async with engine.begin() as conn:
                record = await self._lock(conn, user)
                if prepare(record, now):
                    await self._write(conn, user, record)
                statement = (
                    update(_TABLE)
                    .where(
                        self._key(user),
                        _C.current_cost_nanos + _C.reserved_nanos + amount <= _C.total_budget_nanos,
                    )
                    .values(reserved_nanos=_C.reserved_nanos + amount)
                    .returning(_C.reserved_nanos)
                )
                reserved = (await conn.execute(statement)).scalar()
                if reserved is None:
                    return ReserveOutcome(False, record)
                record.reserved_nanos = int(reserved)
                record.reservations[reservation_id] = held
                await conn.execute(
                    update(_TABLE)
                    .where(self._key(user))
                    .values(reservations=held_to_json(record.reservations))
                )
            return ReserveOutcome(True, record)

        return self._run(work)

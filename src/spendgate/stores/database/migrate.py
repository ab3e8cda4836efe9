"""Schema migrations (Alembic, shipped inside the package) run programmatically."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database.engine import masked_url
from spendgate.stores.database.partitions import ensure_partitions_ahead

__all__ = ["SchemaStatus", "alembic_config", "schema_status", "upgrade"]

log = logging.getLogger("spendgate.database")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "spendgate.stores.database:migrations")
    cfg.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    return cfg


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    url: str
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _upgrade(connection: Connection, revision: str) -> tuple[str | None, str | None]:
    """Upgrade; (revision before, revision after). Alembic's own line per migration and
    per connection is kept out of the log (at debug); :func:`upgrade` logs one line."""
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    before = _current(connection)
    with _quiet_alembic():
        command.upgrade(cfg, revision)
    return before, _current(connection)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's info lines (one per migration, two per connection) only at debug level."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    if not alembic_log.isEnabledFor(logging.DEBUG):
        alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


async def upgrade(engine: AsyncEngine, revision: str = "head", *, now: datetime | None = None) -> None:
    """Migrate the database to ``revision``; on PostgreSQL also create the spend-event
    partitions for this month and the next two. Logs one line: what was migrated."""
    async with engine.begin() as conn:
        before, after = await conn.run_sync(_upgrade, revision)
    where = masked_url(engine.url)
    if before == after:
        log.info("database %s: schema up to date (revision %s)", where, after)
    else:
        log.info("database %s: schema migrated from %s to %s", where, before or "empty", after)
    if engine.dialect.name == "postgresql":
        await ensure_partitions_ahead(engine, now or datetime.now(UTC))


def _current(connection: Connection) -> str | None:
    with _quiet_alembic():
        return MigrationContext.configure(connection).get_current_revision()


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    """The database's current revision, the newest shipped revision and the masked URL."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return SchemaStatus(url=masked_url(engine.url), current=current, head=head)

"""Schema migrations (Alembic, shipped inside the package) run programmatically."""

from __future__ import annotations

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


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head", *, now: datetime | None = None) -> None:
    """Migrate the database to ``revision``; on PostgreSQL also create the spend-event
    partitions for this month and the next two."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)
    if engine.dialect.name == "postgresql":
        await ensure_partitions_ahead(engine, now or datetime.now(UTC))


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    """The database's current revision, the newest shipped revision and the masked URL."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return SchemaStatus(url=masked_url(engine.url), current=current, head=head)

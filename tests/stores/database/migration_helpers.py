"""Helpers of the migration tests (a module with a unique name, not conftest)."""

from __future__ import annotations

from sqlalchemy import Connection

from spendgate.stores.database.migrate import alembic_config


def downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)

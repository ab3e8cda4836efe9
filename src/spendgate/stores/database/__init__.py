"""The SQL database: engines, models, migrations and spend-event partitions."""

from __future__ import annotations

from spendgate.stores.database.engine import DEFAULT_DATABASE_URL, create_engine, database_url, masked_url
from spendgate.stores.database.migrate import SchemaStatus, schema_status, upgrade
from spendgate.stores.database.partitions import drop_expired_partitions, ensure_partitions_ahead

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SchemaStatus",
    "create_engine",
    "database_url",
    "drop_expired_partitions",
    "ensure_partitions_ahead",
    "masked_url",
    "schema_status",
    "upgrade",
]

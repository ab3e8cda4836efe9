"""Counter storages: in-process (``memory://``) and Redis (``redis://``).

:func:`storage_from_url` picks one by URL scheme; the Redis module (and the redis client
library) is only imported when a Redis URL is used.
"""

from __future__ import annotations

from typing import Any

from spendgate.errors import ConfigurationError
from spendgate.stores.counters.base import Storage
from spendgate.stores.counters.memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "storage_from_url"]

_SCHEMES = ("memory", "redis", "rediss", "unix")


def storage_from_url(url: str, **options: Any) -> Storage:
    """A storage for ``memory://`` or ``redis://host:port/db`` (also ``rediss://``, ``unix://``).

    ``options`` go to the storage (for Redis: ``prefix``, ``socket_timeout`` …).

    Raises:
        ConfigurationError: the scheme is unknown.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryStorage(**options)
    if scheme in ("redis", "rediss", "unix"):
        from spendgate.stores.counters.redis import RedisStorage

        return RedisStorage.from_url(url, **options)
    raise ConfigurationError(
        f"unknown counter storage URL {url!r}: expected one of " + ", ".join(f"{s}://" for s in _SCHEMES)
    )

"""Counter storage construction and the Redis storage's packaged Lua scripts."""

from __future__ import annotations

import pytest

from spendgate.errors import ConfigurationError
from spendgate.stores.counters import storage_from_url
from spendgate.stores.counters.redis import RedisStorage, load_script

pytestmark = pytest.mark.redis


async def test_storage_from_url() -> None:
    assert type(storage_from_url("memory://")).__name__ == "MemoryStorage"
    redis_storage = storage_from_url("redis://127.0.0.1:6379/0", prefix="x")
    assert isinstance(redis_storage, RedisStorage) and redis_storage.prefix == "x"
    await redis_storage.close()
    with pytest.raises(ConfigurationError, match="unknown counter storage URL"):
        storage_from_url("mongodb://x")


def test_scripts_are_package_data_with_unit_headers() -> None:
    for name in ("admit", "settle", "read", "renew", "seed"):
        source = load_script(name)
        assert "redis.call" in source
        header = source.split(f"-- {name}.lua", 1)[1][:1500]
        assert "KEYS" in header and "ARGV" in header and ("ms" in header or "nano" in header)

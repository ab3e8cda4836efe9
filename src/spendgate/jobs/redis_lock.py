"""The Redis leader lock: redis-py's :class:`redis.asyncio.lock.Lock` (SET NX PX with a
random token; extended and released only while the token is ours). Its own module so that
redis-py is imported only by a process configured with Redis (:func:`~spendgate.jobs.lock_for`).
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

__all__ = ["RedisLock"]


class RedisLock:
    """Leases as Redis keys ``<prefix><name>`` with a random token and an expiry."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "spendgate:job-lock:", owned: bool = False):
        self.client = client
        self.prefix = prefix
        self._owned = owned  # close the client on close()
        self._held: dict[str, Lock] = {}

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "spendgate:job-lock:") -> RedisLock:
        client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, prefix=prefix, owned=True)

    async def acquire(self, name: str, ttl: float) -> bool:
        if name in self._held and await self.renew(name, ttl):
            return True
        lock = Lock(self.client, self.prefix + name, timeout=ttl, thread_local=False)
        if not await lock.acquire(blocking=False, token=secrets.token_hex(16)):
            return False
        self._held[name] = lock
        return True

    async def renew(self, name: str, ttl: float) -> bool:
        lock = self._held.get(name)
        if lock is None:
            return False
        try:
            await lock.extend(ttl, replace_ttl=True)
        except LockError:  # the key expired or another holder's token is there
            del self._held[name]
            return False
        return True

    async def release(self, name: str) -> None:
        lock = self._held.pop(name, None)
        if lock is not None:
            try:
                await lock.release()
            except LockError:
                pass  # already lapsed: nothing of ours to delete

    async def close(self) -> None:
        for name in list(self._held):
            await self.release(name)
        if self._owned:
            self._owned = False
            await self.client.aclose()

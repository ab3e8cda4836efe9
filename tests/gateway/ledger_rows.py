"""Read spend events straight from a gateway's database, SQLite or PostgreSQL (the recorder
writes behind the request, so the reader waits for the row)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy.engine import make_url

__all__ = ["event_rows"]


async def _query(database_url: str, event_id: str) -> list[dict[str, Any]]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        async with aiosqlite.connect(url.database or "") as conn:
            conn.row_factory = aiosqlite.Row
            cursor = await conn.execute("SELECT * FROM spend_events WHERE event_id = ?", (event_id,))
            return [dict(r) for r in await cursor.fetchall()]
    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM spend_events WHERE event_id = $1", event_id)]
    finally:
        await conn.close()


def event_rows(database_url: str, event_id: str, timeout: float = 10) -> list[dict[str, Any]]:
    """The rows of ``event_id`` (waiting up to ``timeout`` seconds for the first)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = asyncio.run(_query(database_url, event_id))
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)

"""Helpers shared by the ledger tests (imported as a plain module)."""

from __future__ import annotations

import asyncio
import asyncio.base_events
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.stores.database.models import SpendEventRow, SpendRollup

T0 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def make_event(n: int, **kw: Any) -> SpendEvent:
    defaults: dict[str, Any] = {
        "event_id": f"req-{n}",
        "occurred_at": T0 + timedelta(seconds=n),
        "cost_nanos": 1_000 + n,
        "usage": Usage(input_tokens=10 + n, output_tokens=5, cache_read_tokens=2),
        "cost_items": {"input": 600 + n, "output": 400},
        "api_key": "hash-a",
        "team_id": "team-a",
        "user_id": "user-a",
        "organization_id": "org-a",
        "end_user": "cust-a",
        "tags": ("prod",),
        "model": "gpt-4o-mini",
        "provider": "openai",
        "deployment_id": "dep-1",
        "catalogue_version": "test",
        "price_source": "bundled",
    }
    defaults.update(kw)
    return SpendEvent(**defaults)


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(SpendEventRow))).scalar_one())


async def rollup_totals(
    engine: AsyncEngine, grain: int = 3600, scope_type: str = "global"
) -> tuple[int, int]:
    """(requests, cost_nanos) summed over the rollups of one grain and scope type."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(SpendRollup.requests), 0),
                    func.coalesce(func.sum(SpendRollup.cost_nanos), 0),
                ).where(SpendRollup.grain == grain, SpendRollup.scope_type == scope_type)
            )
        ).one()
    return int(row[0]), int(row[1])


class TcpProxy:
    """A real TCP proxy on 127.0.0.1 that can be taken down (connections refused) and up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and cut every open connection."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

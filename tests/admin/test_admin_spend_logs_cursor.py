"""``/spend/logs`` keyset pagination (the ``cursor`` parameter and the
``x-spendgate-next-cursor`` header), on SQLite and PostgreSQL: walking the cursor returns
every event once, newest first, while other events are being written; filters hold across
pages; a bad cursor is a 422 naming it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from admin_helpers import MASTER, Api
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository

NEXT = "x-spendgate-next-cursor"
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def _event(event_id: str, at: datetime, key: str = "k1") -> SpendEvent:
    return SpendEvent(
        event_id=event_id,
        occurred_at=at,
        cost_nanos=1_000 + len(event_id),
        usage=Usage(input_tokens=10, output_tokens=2),
        api_key=key,
        model="gpt-4o-mini",
        provider="openai",
        endpoint="/v1/chat/completions",
    )


async def _page(api: Api, params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    response = await api.client.get(
        "/spend/logs", params={"summarize": "false", **params}, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert response.status_code == 200, response.text
    return response.json(), response.headers.get(NEXT)


def _order(row: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(row["endTime"]), row["request_id"]


async def test_cursor_walks_every_event_once_in_order_under_concurrent_inserts(
    api: Api, engine: AsyncEngine
) -> None:
    ledger = LedgerRepository(engine)
    # 90 events over 3 UTC months (3 partitions on PostgreSQL); every third shares its
    # timestamp with the next one, so pages break inside a tie (ordered by request id).
    before = [_event(f"old-{i:03d}", T0 + timedelta(days=i // 3 * 3)) for i in range(90)]
    await ledger.write_batch(before)
    latest = max(e.occurred_at for e in before)
    stop = asyncio.Event()
    written: list[SpendEvent] = []

    async def writer() -> None:
        # New events keep arriving (newer than everything) while the pages are read.
        n = 0
        while not stop.is_set():
            batch = [_event(f"new-{n + j:05d}", latest + timedelta(seconds=n + j + 1)) for j in range(5)]
            await ledger.write_batch(batch)
            written.extend(batch)
            n += 5
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    rows: list[dict[str, Any]] = []
    late: list[SpendEvent] = []
    cursor: str | None = None
    try:
        while True:
            got, cursor = await _page(api, {"page_size": 7, **({"cursor": cursor} if cursor else {})})
            rows += got
            if cursor is None:
                break
            assert len(got) == 7
            if len(late) < 3:
                # A late event (a replayed journal) older than where the walk stands: it
                # is ahead of the cursor, so it comes once, in its place.
                at = _order(got[-1])[0] - timedelta(hours=1)
                event = _event(f"late-{len(late)}", at)
                await ledger.write_batch([event])
                late.append(event)
    finally:
        stop.set()
        await task
    keys = [_order(r) for r in rows]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)  # in order, each once
    seen = [r["request_id"] for r in rows]
    old = {e.event_id for e in before} | {e.event_id for e in late}
    assert old <= set(seen)  # every event there when the walk passed it
    assert set(seen) - old <= {e.event_id for e in written}
    assert [i for i in seen if i.startswith("old-")] == [e.event_id for e in sorted(
        before, key=lambda e: (e.occurred_at, e.event_id), reverse=True
    )]  # fmt: skip
    assert written  # the writer did write while the pages were read


async def test_cursor_keeps_filters_and_rejects_what_it_cannot_read(api: Api, engine: AsyncEngine) -> None:
    events = [_event(f"r{i:02d}", T0 + timedelta(minutes=i), key="k1" if i % 2 else "k2") for i in range(20)]
    await LedgerRepository(engine).write_batch(events)
    dated = {"start_date": "2025-03-10", "end_date": "2025-03-10", "api_key": "k1"}
    rows, cursor = await _page(api, {**dated, "page_size": 4})
    pages = [rows]
    while cursor is not None:
        rows, cursor = await _page(api, {**dated, "page_size": 4, "cursor": cursor})
        pages.append(rows)
    assert [len(p) for p in pages] == [4, 4, 2]  # 10 events of k1; a short page has no cursor
    ids = [r["request_id"] for p in pages for r in p]
    assert ids == [f"r{i:02d}" for i in range(19, 0, -2)]
    # A full last page says where the next one would start; that page is empty.
    rows, cursor = await _page(api, {**dated, "page_size": 5})
    rows, cursor = await _page(api, {**dated, "page_size": 5, "cursor": cursor})
    assert len(rows) == 5 and cursor is not None
    assert await _page(api, {**dated, "page_size": 5, "cursor": cursor}) == ([], None)
    # LiteLLM's page still works, and its rows are the cursor's.
    second, _ = await _page(api, {**dated, "page_size": 4, "page": 2})
    assert [r["request_id"] for r in second] == ids[4:8]

    for params in (
        {"cursor": "not a cursor"},
        {"cursor": "bm8tY29sb24"},  # base64 of "no-colon"
        {"cursor": cursor, "page": 2},
        {"cursor": cursor, "start_date": "2025-03-10", "end_date": "2025-03-10", "summarize": "true"},
    ):
        status, body = await api.get("/spend/logs", params={"summarize": "false", **params})
        assert status == 422, (params, body)
        assert body["error"]["param"] == "cursor"


@pytest.mark.postgres
async def test_postgres_reads_a_page_from_the_index_without_sorting(postgres_url: str) -> None:
    """The keyset order is the index's (backwards, partition by partition): with sorting
    made as costly as PostgreSQL can make it, the plan still has no Sort node."""
    from spendgate.stores.database import create_engine

    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL enable_sort = off"))
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in await conn.execute(
                    text(
                        "EXPLAIN SELECT * FROM spend_events WHERE (occurred_at, event_id) < "
                        "(CAST(:at AS timestamptz), CAST(:id AS varchar)) "
                        "ORDER BY occurred_at DESC, event_id DESC LIMIT 50"
                    ),
                    {"at": datetime.now(UTC), "id": "x"},
                )
            )
    finally:
        await engine.dispose()
    assert "Sort" not in plan, plan
    assert "Index Scan Backward" in plan and "occurred_at_event_id" in plan, plan

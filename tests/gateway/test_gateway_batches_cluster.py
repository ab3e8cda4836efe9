"""Issue #12, must show: three `spendgate serve` processes sharing PostgreSQL (rows, ledger)
and Redis (counters, the jobs' leader lock), all running the batch-cost job, bill every batch
exactly once — and still exactly once when the instance that claimed a finished batch is
killed with SIGKILL while it bills it, and comes back.

"Exactly once" is checked three ways against a reference computed here, independently of
the gateway: the provider's output file priced line by line with
``spendgate.completion_cost(body, batch=True, at=billed_at)`` and summed in nano-USD. The
ledger holds exactly one ``batch:<id>`` event of that amount; the key's budget counter (in
Redis, read through ``/budget/explain`` from every instance) equals the ledger's sum; and no
reservation is left (reserved 0).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import pytest_asyncio
from cluster_helpers import Cluster, fetch, require_redis, running_cluster
from gateway_helpers import MASTER_KEY
from limits_helpers import Admin
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from batch_test_helpers import price_output
from spendgate.batches import billed_at
from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import ManagedObject

MODEL = "gpt-4o-mini"
CLAIM_LEASE = 2.0
"""``batch_claim_lease_seconds``: a killed claimer's batch is free again after this."""
SETTLE_TIMEOUT = 40.0
"""Long enough for the jobs' Redis leader lease of a killed leader to lapse (10 s) and the
next leader's cycles to bill."""

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module", autouse=True)
def _require_redis() -> None:
    """Checked before the cluster starts (module scoped)."""
    require_redis()


@pytest.fixture(scope="module")
def cluster(
    mock_server: MockServer, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    model = {
        "model_name": MODEL,
        "litellm_params": {"model": f"openai/{MODEL}", "api_base": mock_server.base_url},
    }
    with running_cluster(
        tmp_path_factory.mktemp("batch-cluster"),
        postgres_url,
        f"sgtest-{uuid.uuid4().hex[:12]}",
        [model],
        batch_poll_interval_seconds=0.2,
        batch_poll_jitter_seconds=0,
        batch_claim_lease_seconds=CLAIM_LEASE,
    ) as cluster:
        yield cluster


@pytest_asyncio.fixture
async def db(cluster: Cluster) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(cluster.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def _line(batch: int, n: int) -> str:
    """A chat line whose prompt and output length vary, so every line has its own cost; a
    ``fail-`` custom id fails at the mock (an error-file line, billed nothing)."""
    custom_id = f"fail-{batch}-{n}" if n == 5 else f"b{batch}-r{n}"
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "word " * (5 + 13 * n + batch)}],
        "max_tokens": 3 + 2 * n + batch,
    }
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def _input_file(batch: int, lines: int = 8) -> bytes:
    return b"".join(_line(batch, n).encode() + b"\n" for n in range(lines))


async def _create_batch(client: openai.AsyncOpenAI, batch: int) -> str:
    uploaded = await client.files.create(file=(f"in-{batch}.jsonl", _input_file(batch)), purpose="batch")
    created = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert created.id.startswith("batch_sg")
    return created.id


async def _row(db: AsyncEngine, batch_id: str) -> ManagedObject:
    async with async_sessionmaker(db, expire_on_commit=False)() as session:
        row = await session.get(ManagedObject, batch_id)
    assert row is not None, batch_id
    return row


async def _wait_settled(db: AsyncEngine, batch_ids: Sequence[str], timeout: float) -> list[ManagedObject]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [await _row(db, b) for b in batch_ids]
        if all(r.settled_at is not None for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def _reference_bill(mock: MockServer, row: ManagedObject) -> int:
    """The batch's bill in nano-USD, from the provider's own batch object and output file:
    each line priced with ``completion_cost(batch=True)`` at the batch's billing time. The
    row holds exactly that bill, of 7 priced lines (8, one of which failed)."""
    async with httpx.AsyncClient(base_url=mock.url, headers={"authorization": "Bearer sk-ref"}) as http:
        batch = (await http.get(f"/batches/{row.provider_id}")).raise_for_status().json()
        assert batch["status"] == "completed", batch
        output = (await http.get(f"/files/{batch['output_file_id']}/content")).raise_for_status().content
    bill, lines = price_output(output, billed_at(row, batch))
    assert lines == 7 and bill > 0
    assert row.cost_nanos == bill, row.id
    return bill


async def _ledger(database_url: str, where: str, *args: Any) -> list[asyncpg.Record]:
    return await fetch(
        database_url,
        f"SELECT event_id, cost_nanos, api_key, batch_id, unpriced FROM spend_events WHERE {where}",  # noqa: S608
        *args,
    )


def _key_window(url: str, raw_key: str) -> tuple[Decimal, Decimal]:
    """(spend, reserved) in USD of the key's own budget window, as this instance reads them."""
    r = httpx.post(
        f"{url}/budget/explain",
        json={"key": raw_key},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = json.loads(r.text, parse_float=Decimal)
    [window] = [w for w in body["windows"] if w["scope"] == f"key:{hash_key(raw_key)}"]
    return Decimal(window["spend"]), Decimal(window["reserved"])


def _usd(nanos: int) -> Decimal:
    return Decimal(nanos) / 10**9


async def _assert_billed_once(cluster: Cluster, raw_key: str, bills: dict[str, int]) -> None:
    """The key's ledger holds exactly one ``batch:<id>`` event of each batch's bill (read
    again after a second writer would have landed), and every instance reads their sum in
    the key's shared counter as spent, nothing reserved."""
    key_id = hash_key(raw_key)
    deadline = time.monotonic() + 20  # the recorders write behind
    while len(await _ledger(cluster.database_url, "api_key = $1", key_id)) < len(bills):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a second writer would land now: look again
    events = await _ledger(cluster.database_url, "api_key = $1", key_id)
    assert sorted((e["event_id"], e["cost_nanos"], e["batch_id"]) for e in events) == sorted(
        (f"batch:{b}", bill, b) for b, bill in bills.items()
    )
    for url in cluster.urls:  # the shared counter, read from every instance
        assert _key_window(url, raw_key) == (_usd(sum(bills.values())), Decimal(0))


async def _poll_everywhere(cluster: Cluster) -> list[dict[str, int]]:
    """``POST /batches/poll`` on the three instances at once: three pollers racing for the
    same finished batches (beside the job's own cycles)."""
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http:
        replies = await asyncio.gather(*(http.post(f"{u}/batches/poll") for u in cluster.urls))
    for r in replies:
        assert r.status_code == 200, r.text
    return [dict(r.json()) for r in replies]


async def test_three_polling_gateways_bill_each_batch_exactly_once(
    cluster: Cluster, mock: MockServer, db: AsyncEngine
) -> None:
    with Admin(cluster.urls[0]) as admin:
        raw = admin.key(key_alias=f"cluster-batches-{uuid.uuid4().hex[:6]}", max_budget=50.0)
    clients = [
        openai.AsyncOpenAI(base_url=f"{u}/v1", api_key=raw, max_retries=0, timeout=30) for u in cluster.urls
    ]
    try:
        batch_ids = list(await asyncio.gather(*(_create_batch(clients[i % 3], i) for i in range(6))))
        # While they run, every instance also runs cycles of its own, at the same moment.
        for _ in range(5):
            await _poll_everywhere(cluster)
        rows = await _wait_settled(db, batch_ids, SETTLE_TIMEOUT)
        assert all(r.settled_at is not None and not r.stale for r in rows), [
            (r.id, r.status, r.claimed_by) for r in rows
        ]
        for _ in range(3):  # more racing cycles after settlement: nothing is billed again
            await _poll_everywhere(cluster)
        await asyncio.sleep(1.0)  # and a few of the jobs' own cycles

        bills = {row.id: await _reference_bill(mock, row) for row in rows}
        await _assert_billed_once(cluster, raw, bills)

        for i, b in enumerate(batch_ids):  # a settled batch's retrieve carries its exact bill
            reply = await clients[(i + 1) % 3].batches.with_raw_response.retrieve(b)
            assert Decimal(reply.headers["x-spendgate-response-cost"]) == _usd(bills[b])
        total = _usd(sum(bills.values()))
        assert _key_window(cluster.urls[2], raw) == (total, Decimal(0))  # retrieves bill nothing
    finally:
        for c in clients:
            await c.close()


async def test_a_claimer_killed_mid_bill_is_overtaken_and_the_batch_billed_once(
    cluster: Cluster, mock: MockServer, db: AsyncEngine
) -> None:
    with Admin(cluster.urls[0]) as admin:
        raw = admin.key(key_alias=f"cluster-kill-{uuid.uuid4().hex[:6]}", max_budget=50.0)
    # The claimer's download of the output file hangs (until its connection drops).
    mock.queue_faults({"hang": True, "path": "/files/{id}/content", "times": 1})
    async with openai.AsyncOpenAI(
        base_url=f"{cluster.urls[1]}/v1", api_key=raw, max_retries=0, timeout=30
    ) as client:
        batch_id = await _create_batch(client, 40)

    # Wait until one instance has claimed the finished batch and is stuck downloading it.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    row = await _row(db, batch_id)
    hanging: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        row = await _row(db, batch_id)
        hanging = [r for r in mock.requests() if r["path"].endswith("/content") and r["method"] == "GET"]
        if row.claimed_by is not None and hanging:
            break
        await asyncio.sleep(0.05)
    assert row.claimed_by is not None and row.claimed_at is not None and hanging, (row.status, hanging)
    assert row.settled_at is None and row.status == "completed"
    assert hanging[0]["path"] == f"/v1/files/{row.output_file_id}/content"
    claimer_pid = int(row.claimed_by.rsplit(":", 1)[1])
    index = cluster.index_of(claimer_pid)  # the claimer is one of the three

    cluster.procs[index].send_signal(signal.SIGKILL)
    assert cluster.procs[index].wait(timeout=10) == -signal.SIGKILL
    assert (await _row(db, batch_id)).settled_at is None  # killed before it finished
    mock.reset()  # no fault left
    cluster.start(index)  # and it comes back

    [row] = await _wait_settled(db, [batch_id], SETTLE_TIMEOUT)
    assert row.settled_at is not None and not row.stale, (row.status, row.claimed_by)
    assert row.claimed_by is not None and not row.claimed_by.endswith(f":{claimer_pid}")
    await asyncio.sleep(1.0)  # further cycles on all three: nothing more

    await _assert_billed_once(cluster, raw, {batch_id: await _reference_bill(mock, row)})

"""The composition root starts the batch-cost job: a batch whose row the gateway holds is
billed once, by the running server, as soon as its provider has finished it — the
reservation replaced by the exact bill, one ledger event, the row settled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from batch_test_helpers import add_unknown_batch, batch_gateway_config, price_output
from spendgate.batches import ManagedObjectRepository, billed_at, new_object_id
from spendgate.enforcement import BudgetLimit, EnforcementRequest, Scope, explain
from spendgate.jobs import LocalLock
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.server import Services, build_app
from spendgate.stores.database.models import ManagedObject, SpendEventRow

USD = 10**9
BUDGET = BudgetLimit.of(Scope("key", "key-a"), "1mo", 10 * USD)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


def _line(n: int) -> dict[str, Any]:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "w " * (3 + 7 * n)}],
        "max_tokens": 5,
    }
    return {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": body}


async def test_the_server_bills_a_finished_batch_once(tmp_path: Path, mock: MockServer) -> None:
    config = batch_gateway_config(
        tmp_path, mock.url, "sk-master-jobs", batch_poll_interval_seconds=0.1, batch_poll_jitter_seconds=0
    )
    # Another gateway of this process, on another database, leads its own batch-cost job:
    # leader locks are per deployment, so it must not keep this one's job from running.
    other = LocalLock(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    assert await other.acquire("batch-cost", 3600)
    app = build_app(config)
    async with app.starlette.router.lifespan_context(app.starlette):
        services: Services = app.state.services
        assert services.enforcer is not None and [job.name for job in services.jobs.jobs] == [
            "batch-cost",
            "alert-resolver",
        ]
        deployment = services.pipeline.router.candidates("batch-model")[0]
        upstream = BatchUpstream(services.client, deployment.target, where=deployment.id)
        data = b"".join(json.dumps(_line(n)).encode() + b"\n" for n in range(25))
        uploaded = await upstream.upload_file("in.jsonl", data)
        batch = await upstream.create_batch(uploaded["id"], "/v1/chat/completions")
        # What creating the batch through the gateway writes: the row and its 24 h reservation.
        object_id = new_object_id("batch", "openai")
        reservation = await services.enforcer.admit(
            EnforcementRequest(object_id, [BUDGET], [], USD, 10_000), lease_seconds=86_400
        )
        now = datetime.now(UTC)
        sessions = async_sessionmaker(services.engine, expire_on_commit=False)
        async with sessions() as session:
            await ManagedObjectRepository(session).add(
                ManagedObject(
                    id=object_id,
                    kind="batch",
                    api="openai",
                    deployment_id=deployment.id,
                    provider_id=batch["id"],
                    model_group="batch-model",
                    endpoint="/v1/chat/completions",
                    status="validating",
                    api_key="key-a",
                    reservation=reservation.to_json(),
                    reserved_nanos=USD,
                    created_at=now - timedelta(seconds=1),
                    updated_at=now,
                )
            )
            await session.commit()

        row: ManagedObject | None = None
        for _ in range(200):  # the mock finishes a batch after a few retrieves: a few cycles
            await asyncio.sleep(0.05)
            async with sessions() as session:
                row = await session.get(ManagedObject, object_id)
            if row is not None and row.settled_at is not None:
                break
        assert row is not None and row.settled_at is not None and not row.stale

        final = await upstream.retrieve_batch(batch["id"])
        async with upstream.file_content(final["output_file_id"]) as chunks:
            output = b"".join([chunk async for chunk in chunks])
        bill, lines = price_output(output, billed_at(row, final))
        assert lines == 25
        assert bill > 0 and row.cost_nanos == bill

        [state] = await explain(services.enforcer, EnforcementRequest("probe", [BUDGET]))
        assert (state.spend_nanos, state.reserved_nanos) == (bill, 0)  # the reservation became the bill

        await asyncio.sleep(0.5)  # more cycles: nothing billed again
        flush = getattr(services.recorder, "flush", None)
        assert flush is not None
        await flush(timeout=10)
        async with sessions() as session:
            events = list(
                await session.scalars(select(SpendEventRow).where(SpendEventRow.operation_id == object_id))
            )
        assert [(e.event_id, e.cost_nanos, e.api_key) for e in events] == [
            (f"batch:{object_id}", bill, "key-a")
        ]
        [state] = await explain(services.enforcer, EnforcementRequest("probe", [BUDGET]))
        assert state.spend_nanos == bill
    await other.close()


async def test_batches_poll_runs_one_cycle_for_the_master_key_only(tmp_path: Path, mock: MockServer) -> None:
    # only the endpoint runs cycles here
    config = batch_gateway_config(tmp_path, mock.url, "sk-master-poll", batch_poll_interval_seconds=3600)
    app = build_app(config)
    async with app.starlette.router.lifespan_context(app.starlette):
        services: Services = app.state.services
        await services.jobs.close()  # the job's own first cycle must not race the endpoint's
        await add_unknown_batch(services)  # a batch its provider does not know: retired as stale
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            anonymous = await http.post("/batches/poll")
            other = await http.post("/batches/poll", headers={"Authorization": "Bearer sk-other"})
            ran = await http.post("/batches/poll", headers={"Authorization": "Bearer sk-master-poll"})
            again = await http.post("/batches/poll", headers={"Authorization": "Bearer sk-master-poll"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"]
    assert other.status_code == 403
    assert ran.status_code == 200 and ran.json() == {"seen": 1, "settled": 0, "stale": 1, "errors": 0}
    assert again.json() == {"seen": 0, "settled": 0, "stale": 0, "errors": 0}

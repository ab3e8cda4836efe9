"""BatchPoller.run_once against the real mock provider (it finishes a batch after N retrieves),
on SQLite and PostgreSQL, counters on memory and Redis: pending batches wait, finished ones
are billed once, a 404 or a batch too old is retired and its reservation released, and one
bad batch never stops the cycle."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_batch_settlement import (
    NOW,
    WORST,
    _bill,
    _budget,
    _deployment,
    _events,
    _jsonl,
    _line,
    _read,
    _row,
    _settled,
    billed_at,
)

from spendgate.batches import BatchPoller, PollCycle, PolledDeployment
from spendgate.enforcement import Enforcer
from spendgate.gateway.deployments import Deployment
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.recorder import Recorder
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.http import UpstreamClient
from spendgate.providers.mock import MockServer

# -- helpers (the fixtures are in conftest.py) --------------------------------------------------


def _poller(
    sessions: async_sessionmaker[AsyncSession],
    enforcer: Enforcer,
    recorder: Any,
    *deployments: Deployment,
    client: UpstreamClient,
) -> BatchPoller:
    known = {d.id: PolledDeployment(d, BatchUpstream(client, d.target, where=d.id)) for d in deployments}
    return BatchPoller(
        sessions=sessions,
        enforcer=enforcer,
        recorder=recorder,
        deployments=known.get,
        instance_id="poller-a",
        max_age=timedelta(days=2),
    )


async def _created(upstream: BatchUpstream, lines: int, polls: int) -> dict[str, Any]:
    rows = [_line(f"r{n}", 5 + n * 7, 1 + n % 5) for n in range(lines)]
    uploaded = await upstream.upload_file("in.jsonl", _jsonl(rows))
    return await upstream.create_batch(
        uploaded["id"], "/v1/chat/completions", headers={"x-mock-batch-polls": str(polls)}
    )


# -- tests ---------------------------------------------------------------------------------------


async def test_pending_batches_wait_and_finished_ones_are_billed_once(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    openai_dep = _deployment(mock, "openai", "gpt-4o-mini")
    anthropic_dep = _deployment(mock, "anthropic", "claude-haiku-4-5", "batch-claude")
    openai_up = BatchUpstream(client, openai_dep.target)
    anthropic_up = BatchUpstream(client, anthropic_dep.target)
    first = await _created(openai_up, 9, polls=2)
    second = await _created(openai_up, 4, polls=2)
    requests = [
        {
            "custom_id": f"m{n}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 2 + n,
                "messages": [{"role": "user", "content": "word " * (3 + n)}],
            },
        }
        for n in range(6)
    ]
    message_batch = await anthropic_up.create_message_batch(requests, headers={"x-mock-batch-polls": "2"})
    rows = [
        await _row(sessions, enforcer, openai_dep, first, claim=False),
        await _row(sessions, enforcer, openai_dep, second, claim=False),
        await _row(sessions, enforcer, anthropic_dep, message_batch, "anthropic", claim=False),
    ]
    poller = _poller(sessions, enforcer, recorder, openai_dep, anthropic_dep, client=client)
    assert await _budget(enforcer) == (0, 3 * WORST)

    assert await poller.run_once(NOW) == PollCycle(seen=3)  # one retrieve each: still in progress
    assert {(await _settled(sessions, r.id)).status for r in rows} == {"in_progress"}
    assert await _budget(enforcer) == (0, 3 * WORST)

    assert await poller.run_once(NOW + timedelta(minutes=1)) == PollCycle(seen=3, settled=3)
    expected = 0
    for row, batch in zip(rows[:2], (first, second), strict=True):
        done = await openai_up.retrieve_batch(batch["id"])
        lines = await _read(openai_up, done["output_file_id"])
        expected += _bill([line["response"]["body"] for line in lines], billed_at(row, done))
        settled = await _settled(sessions, row.id)
        assert settled.cost_nanos == _bill([line["response"]["body"] for line in lines], billed_at(row, done))
        assert settled.status == "completed" and settled.output_file_id == done["output_file_id"]
    ended = await anthropic_up.retrieve_message_batch(message_batch["id"])
    async with anthropic_up.message_batch_results(message_batch["id"]) as chunks:
        raw = b"".join([chunk async for chunk in chunks])
    messages = [json.loads(line)["result"]["message"] for line in raw.splitlines()]
    expected += _bill(messages, billed_at(rows[2], ended))
    assert await _budget(enforcer) == (expected, 0)
    events = await _events(sessions, recorder)
    assert sorted(e.event_id for e in events) == sorted(f"batch:{r.id}" for r in rows)
    assert sum(e.cost_nanos for e in events) == expected

    assert await poller.run_once(NOW + timedelta(minutes=2)) == PollCycle()  # nothing left
    assert await _budget(enforcer) == (expected, 0) and len(await _events(sessions, recorder)) == 3


async def test_lost_and_stuck_batches_are_retired_and_a_bad_one_does_not_stop_the_cycle(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    dep = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, dep.target)
    done = await _created(upstream, 5, polls=0)  # completed at once
    stuck = await _created(upstream, 3, polls=1000)
    elsewhere = await _created(upstream, 3, polls=0)
    missing = {**done, "id": "batch_missing"}
    good = await _row(sessions, enforcer, dep, done, claim=False)
    lost = await _row(sessions, enforcer, dep, missing, claim=False)
    old = await _row(sessions, enforcer, dep, stuck, claim=False, created_at=NOW - timedelta(days=3))
    orphan = await _row(sessions, enforcer, dep, elsewhere, claim=False, deployment_id="removed-deployment")
    poller = _poller(sessions, enforcer, recorder, dep, client=client)

    cycle = await poller.run_once(NOW)
    assert cycle == PollCycle(seen=4, settled=1, stale=2, errors=1)
    lines = await _read(upstream, done["output_file_id"])
    expected = _bill([line["response"]["body"] for line in lines], billed_at(good, done))
    # the orphan keeps its reservation (its deployment may come back); the others are released
    assert await _budget(enforcer) == (expected, WORST)
    for row in (lost, old):
        retired = await _settled(sessions, row.id)
        assert retired.stale and retired.settled_at is not None and retired.cost_nanos is None
    assert (await _settled(sessions, orphan.id)).settled_at is None
    assert [e.event_id for e in await _events(sessions, recorder)] == [f"batch:{good.id}"]

    # the next cycle sees the orphan only; too old, it is retired without its deployment
    assert await poller.run_once(NOW + timedelta(days=3)) == PollCycle(seen=1, stale=1)
    assert await _budget(enforcer) == (expected, 0)


class _RecorderFailingOnce:
    def __init__(self, real: Recorder) -> None:
        self.real = real
        self.calls = 0

    async def record_durable(self, event: SpendEvent) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected ledger failure")
        await self.real.record_durable(event)


async def test_a_failed_settle_gives_the_claim_back_and_the_next_cycle_bills_once(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    dep = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, dep.target)
    batch = await _created(upstream, 6, polls=0)
    row = await _row(sessions, enforcer, dep, batch, claim=False)
    poller = _poller(sessions, enforcer, _RecorderFailingOnce(recorder), dep, client=client)

    assert await poller.run_once(NOW) == PollCycle(seen=1, errors=1)
    after_failure = await _settled(sessions, row.id)
    assert after_failure.settled_at is None and after_failure.claimed_by is None  # given back
    assert await poller.run_once(NOW) == PollCycle(seen=1, settled=1)  # at once, no lease wait
    lines = await _read(upstream, batch["output_file_id"])
    expected = _bill([line["response"]["body"] for line in lines], billed_at(row, batch))
    assert await _budget(enforcer) == (expected, 0)
    [event] = await _events(sessions, recorder)
    assert event.cost_nanos == expected

"""settle_batch against the real mock provider, on SQLite and PostgreSQL, with the enforcer on
memory and Redis: the bill is the sum of every line's completion_cost(body, batch=True), the
reservation goes back to 0, one ledger event, the row settled, and exactly once through
repeats and crashes after each step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import spendgate
from counter_backends import USD
from spendgate.batches import (
    ManagedObjectRepository,
    RequestCounts,
    billed_at,
    is_ready,
    new_object_id,
    provider_counts,
    settle_batch,
)
from spendgate.config import parse_config
from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage
from spendgate.enforcement import (
    BudgetLimit,
    EnforcementRequest,
    Enforcer,
    Scope,
    explain,
)
from spendgate.gateway.deployments import Deployment, build_deployments
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.recorder import Recorder
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.http import UpstreamClient
from spendgate.providers.mock import MockServer
from spendgate.stores.database.models import ManagedObject, SpendEventRow

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
KEY = Scope("key", "key-a")
BUDGET = BudgetLimit.of(KEY, "1mo", 10 * USD)
WORST = USD // 10  # the reservation: far above what the mock's lines cost
LEASE = 300.0
BY = "poller-1"


# -- helpers (the fixtures are in conftest.py) --------------------------------------------------


def _deployment(mock: MockServer, provider: str, model: str, name: str = "batch-model") -> Deployment:
    base = mock.url if provider == "openai" else mock.base_url
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": name,
                    "litellm_params": {"model": f"{provider}/{model}", "api_base": base, "api_key": "sk-b"},
                }
            ]
        }
    )
    return build_deployments(config, spendgate.default_price_book())[0]


def _line(custom_id: str, words: int, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "w " * words}],
        "max_tokens": max_tokens,
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


async def _read(upstream: BatchUpstream, file_id: str) -> list[dict[str, Any]]:
    async with upstream.file_content(file_id) as chunks:
        data = b"".join([chunk async for chunk in chunks])
    return [json.loads(row) for row in data.splitlines() if row.strip()]


async def _openai_batch(upstream: BatchUpstream, lines: int, fails: int = 0) -> dict[str, Any]:
    rows = [_line(f"r{n}", 3 + n * 11, 1 + n % 9) for n in range(lines)]
    rows += [_line(f"fail-{n}", 4, 2) for n in range(fails)]
    uploaded = await upstream.upload_file("in.jsonl", _jsonl(rows))
    created = await upstream.create_batch(
        uploaded["id"], "/v1/chat/completions", headers={"x-mock-batch-polls": "1"}
    )
    done = await upstream.retrieve_batch(created["id"])
    assert done["status"] == "completed"
    return done


async def _row(
    sessions: async_sessionmaker[AsyncSession],
    enforcer: Enforcer,
    deployment: Deployment,
    batch: dict[str, Any],
    api: str = "openai",
    *,
    claim: bool = True,
    created_at: datetime = NOW - timedelta(hours=1),
    deployment_id: str | None = None,
) -> ManagedObject:
    """The batch's row as creation writes it (attribution, the persisted 24 h reservation),
    then claimed by BY (unless ``claim`` is false)."""
    object_id = new_object_id("batch", "openai" if api == "openai" else "anthropic")
    reservation = await enforcer.admit(
        EnforcementRequest(object_id, [BUDGET], [], WORST, 10_000), lease_seconds=86_400
    )
    row = ManagedObject(
        id=object_id,
        kind="batch",
        api=api,
        deployment_id=deployment_id or deployment.id,
        provider_id=batch["id"],
        model_group="batch-model",
        endpoint="/v1/chat/completions" if api == "openai" else "/v1/messages",
        status="in_progress",
        api_key="key-a",
        user_id="user-1",
        team_id="team-1",
        organization_id="org-1",
        end_user="eu-1",
        tags=["t1", "t2"],
        reservation=reservation.to_json(),
        reserved_nanos=WORST,
        created_at=created_at,
        updated_at=created_at,
    )
    async with sessions() as session:
        repo = ManagedObjectRepository(session)
        await repo.add(row)
        assert not claim or await repo.claim(object_id, by=BY, now=NOW, lease_seconds=LEASE)
        await session.commit()
    return row


async def _budget(enforcer: Enforcer) -> tuple[int, int]:
    [state] = await explain(enforcer, EnforcementRequest("probe", [BUDGET]))
    return state.spend_nanos, state.reserved_nanos


async def _events(sessions: async_sessionmaker[AsyncSession], recorder: Recorder) -> list[SpendEventRow]:
    await recorder.flush(timeout=10)
    async with sessions() as session:
        return list((await session.scalars(select(SpendEventRow).order_by(SpendEventRow.event_id))).all())


async def _settled(sessions: async_sessionmaker[AsyncSession], object_id: str) -> ManagedObject:
    async with sessions() as session:
        row = await ManagedObjectRepository(session).get(object_id)
        assert row is not None
        return row


def _args(
    deployment: Any, upstream: BatchUpstream, enforcer: Enforcer, recorder: Any, sessions: Any
) -> dict[str, Any]:
    """settle_batch's keyword arguments for BY at NOW."""
    return {
        "by": BY,
        "deployment": deployment,
        "upstream": upstream,
        "enforcer": enforcer,
        "recorder": recorder,
        "sessions": sessions,
        "now": NOW,
    }


def _column(event: SpendEventRow, name: str) -> Any:
    """A usage column (the model declares them in a loop, so mypy does not see them)."""
    return getattr(event, name)


def _bill(bodies: list[dict[str, Any]], at: datetime) -> int:
    """The exact bill: every line priced on its own, as a separate call at the batch tier."""
    return sum(to_nano(spendgate.completion_cost(body, batch=True, at=at)) for body in bodies)


# -- tests ---------------------------------------------------------------------------------------


async def test_a_completed_batch_is_billed_exactly_once(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deployment = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, deployment.target, where=deployment.id)
    batch = await _openai_batch(upstream, 25, fails=2)
    row = await _row(sessions, enforcer, deployment, batch)
    assert await _budget(enforcer) == (0, WORST)
    bodies = [line["response"]["body"] for line in await _read(upstream, batch["output_file_id"])]
    at = billed_at(row, batch)
    expected = _bill(bodies, at)
    assert expected > 0 and len(bodies) == 25

    kwargs = _args(deployment, upstream, enforcer, recorder, sessions)
    done = await settle_batch(row, batch, **kwargs)
    assert done.settled and done.cost_nanos == expected and done.event_ids == (f"batch:{row.id}",)
    assert done.totals.lines_ok == 25 and done.totals.lines_failed == 2
    assert await _budget(enforcer) == (expected, 0)

    [event] = await _events(sessions, recorder)
    assert event.event_id == f"batch:{row.id}" and event.operation_id == row.id and event.batch_id == row.id
    assert event.cost_nanos == expected and not event.unpriced and not event.estimated
    assert event.status == "partial"  # two lines failed
    assert event.occurred_at == at and event.service_tier == "batch"
    assert (event.api_key, event.user_id, event.team_id, event.organization_id, event.end_user) == (
        "key-a",
        "user-1",
        "team-1",
        "org-1",
        "eu-1",
    )
    assert event.request_tags == ["t1", "t2"] and event.deployment_id == deployment.id
    assert event.provider == "openai" and event.endpoint == "/v1/chat/completions"
    assert _column(event, "input_tokens") == sum(b["usage"]["prompt_tokens"] for b in bodies)
    assert _column(event, "output_tokens") == sum(b["usage"]["completion_tokens"] for b in bodies)

    settled = await _settled(sessions, row.id)
    assert settled.settled_at is not None and settled.cost_nanos == expected and not settled.unpriced
    assert settled.status == "completed"
    assert (settled.requests_total, settled.requests_completed, settled.requests_failed) == (27, 25, 2)
    assert (
        settled.output_file_id == batch["output_file_id"] and settled.error_file_id == batch["error_file_id"]
    )
    assert settled.usage is not None and settled.usage["output_tokens"] == _column(event, "output_tokens")

    again = await settle_batch(row, batch, **kwargs)  # a repeat changes nothing
    assert not again.settled and again.event_ids == ()
    assert await _budget(enforcer) == (expected, 0)
    assert len(await _events(sessions, recorder)) == 1
    assert (await _settled(sessions, row.id)).settled_at == settled.settled_at


class _FailOnce:
    """Raises on call number ``fail_at`` (only), else does what the real one does (the
    sessions' first call is settle_batch's claim check, the second the row's settle)."""

    def __init__(self, real: Any, fail_at: int = 1) -> None:
        self.real = real
        self.fail_at = fail_at
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected crash")


class _RecorderFailingOnce(_FailOnce):
    async def record_durable(self, event: SpendEvent) -> None:
        self._maybe_fail()
        await self.real.record_durable(event)


class _SessionsFailingOnce(_FailOnce):
    def __call__(self) -> Any:
        self._maybe_fail()
        return self.real()


@pytest.mark.parametrize("crash", ["after_counters", "after_ledger"])
async def test_a_crash_after_any_step_settles_exactly_once_on_the_next_claim(
    crash: str,
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deployment = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, deployment.target, where=deployment.id)
    batch = await _openai_batch(upstream, 12)
    row = await _row(sessions, enforcer, deployment, batch)
    bodies = [line["response"]["body"] for line in await _read(upstream, batch["output_file_id"])]
    expected = _bill(bodies, billed_at(row, batch))
    failing_recorder: Any = _RecorderFailingOnce(recorder) if crash == "after_counters" else recorder
    failing_sessions: Any = _SessionsFailingOnce(sessions, fail_at=2) if crash == "after_ledger" else sessions
    common: dict[str, Any] = {"deployment": deployment, "upstream": upstream, "enforcer": enforcer}

    with pytest.raises(RuntimeError, match="injected crash"):
        await settle_batch(
            row, batch, by=BY, recorder=failing_recorder, sessions=failing_sessions, now=NOW, **common
        )
    assert await _budget(enforcer) == (expected, 0)  # the counters were settled before the crash
    assert len(await _events(sessions, recorder)) == (1 if crash == "after_ledger" else 0)
    assert (await _settled(sessions, row.id)).settled_at is None

    # another instance takes the row once the claim lease ran out, and runs it all again
    later = NOW + timedelta(seconds=LEASE + 1)
    async with sessions() as session:
        assert not await ManagedObjectRepository(session).claim(
            row.id, by="poller-2", now=NOW, lease_seconds=LEASE
        )
        assert await ManagedObjectRepository(session).claim(
            row.id, by="poller-2", now=later, lease_seconds=LEASE
        )
        await session.commit()
    done = await settle_batch(
        row, batch, by="poller-2", recorder=failing_recorder, sessions=failing_sessions, now=later, **common
    )
    assert done.settled and done.cost_nanos == expected
    assert await _budget(enforcer) == (expected, 0)
    [event] = await _events(sessions, recorder)
    assert event.cost_nanos == expected and event.status == "success"
    settled = await _settled(sessions, row.id)
    assert settled.cost_nanos == expected and settled.claimed_by == "poller-2"
    # the first claimer, come back, cannot settle it again
    assert not (
        await settle_batch(row, batch, by=BY, recorder=recorder, sessions=sessions, now=later, **common)
    ).settled
    assert await _budget(enforcer) == (expected, 0) and len(await _events(sessions, recorder)) == 1


async def test_a_cancelled_batch_bills_exactly_the_lines_done(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deployment = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, deployment.target, where=deployment.id)
    full = await _openai_batch(upstream, 20)
    done_lines = (await _read(upstream, full["output_file_id"]))[:7]
    partial = await upstream.upload_file("partial_output.jsonl", _jsonl(done_lines), purpose="batch_output")
    stamp = int(NOW.timestamp())
    cancelled = {
        **full,
        "status": "cancelled",
        "output_file_id": partial["id"],
        "error_file_id": None,
        "completed_at": None,
        "cancelled_at": stamp,
        "request_counts": {"total": 20, "completed": 7, "failed": 0},
    }
    row = await _row(sessions, enforcer, deployment, cancelled)
    expected = _bill([line["response"]["body"] for line in done_lines], NOW)
    assert billed_at(row, cancelled) == NOW

    done = await settle_batch(row, cancelled, **_args(deployment, upstream, enforcer, recorder, sessions))
    assert done.settled and done.cost_nanos == expected > 0 and done.totals.lines_ok == 7
    assert await _budget(enforcer) == (expected, 0)  # the rest of the reservation released
    [event] = await _events(sessions, recorder)
    assert event.cost_nanos == expected and event.status == "success"
    settled = await _settled(sessions, row.id)
    assert settled.status == "cancelled" and settled.cost_nanos == expected
    assert (settled.requests_total, settled.requests_completed) == (20, 7)


async def test_a_batch_with_nothing_done_releases_records_nothing_and_settles_at_zero(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deployment = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, deployment.target, where=deployment.id)
    uploaded = await upstream.upload_file("in.jsonl", _jsonl([_line("a", 3, 2), _line("b", 4, 2)]))
    created = await upstream.create_batch(uploaded["id"], "/v1/chat/completions")
    await upstream.cancel_batch(created["id"])
    cancelled = await upstream.retrieve_batch(created["id"])
    assert cancelled["status"] == "cancelled" and cancelled["output_file_id"] is None
    row = await _row(sessions, enforcer, deployment, cancelled)

    done = await settle_batch(row, cancelled, **_args(deployment, upstream, enforcer, recorder, sessions))
    assert done.settled and done.cost_nanos == 0 and done.event_ids == ()
    assert await _budget(enforcer) == (0, 0)
    assert await _events(sessions, recorder) == []
    settled = await _settled(sessions, row.id)
    assert settled.settled_at is not None and settled.cost_nanos == 0 and settled.status == "cancelled"


async def test_an_anthropic_message_batch_is_billed_as_its_results(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deployment = _deployment(mock, "anthropic", "claude-haiku-4-5")
    upstream = BatchUpstream(client, deployment.target, where=deployment.id)
    requests = [
        {
            "custom_id": f"m{n}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 1 + n,
                "messages": [{"role": "user", "content": "word " * (n * 5 + 1)}],
            },
        }
        for n in range(15)
    ]
    created = await upstream.create_message_batch(requests, headers={"x-mock-batch-polls": "1"})
    ended = await upstream.retrieve_message_batch(created["id"])
    assert ended["processing_status"] == "ended"
    row = await _row(sessions, enforcer, deployment, ended, api="anthropic")
    async with upstream.message_batch_results(created["id"]) as chunks:
        raw = b"".join([chunk async for chunk in chunks])
    messages = [json.loads(line)["result"]["message"] for line in raw.splitlines()]
    at = billed_at(row, ended)
    assert at != row.created_at
    expected = _bill(messages, at)

    done = await settle_batch(row, ended, **_args(deployment, upstream, enforcer, recorder, sessions))
    assert done.settled and done.cost_nanos == expected > 0 and done.totals.lines_ok == 15
    assert await _budget(enforcer) == (expected, 0)
    [event] = await _events(sessions, recorder)
    assert event.cost_nanos == expected and event.provider == "anthropic" and event.status == "success"
    settled = await _settled(sessions, row.id)
    assert settled.status == "ended" and (settled.requests_total, settled.requests_completed) == (15, 15)


class _PartlyPriced:
    """A deployment that has no price for the lines with an even output count (as if
    those lines had been served by a model it cannot price)."""

    def __init__(self, real: Deployment) -> None:
        self.real = real
        self.provider = real.provider

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown:
        if usage.output_tokens % 2 == 0:
            return CostBreakdown(model="x", priced=False, usage=usage, unpriced_reason="no price for x")
        return self.real.price(usage, at, served_tier=served_tier, requested_tier=requested_tier)


async def test_unpriced_lines_go_on_their_own_event_and_never_as_zero_dollars(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    real = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, real.target, where=real.id)
    batch = await _openai_batch(upstream, 30)  # max_tokens 1 + n % 9: odd and even counts, repeated
    row = await _row(sessions, enforcer, real, batch)
    bodies = [line["response"]["body"] for line in await _read(upstream, batch["output_file_id"])]
    priced = [b for b in bodies if b["usage"]["completion_tokens"] % 2]
    unpriced = [b for b in bodies if not b["usage"]["completion_tokens"] % 2]
    assert priced and unpriced
    expected = _bill(priced, billed_at(row, batch))

    done = await settle_batch(
        row, batch, **_args(_PartlyPriced(real), upstream, enforcer, recorder, sessions)
    )
    assert done.settled and done.cost_nanos == expected and done.totals.unpriced_lines == len(unpriced)
    assert done.event_ids == (f"batch:{row.id}", f"batch:{row.id}:unpriced")
    assert await _budget(enforcer) == (expected, 0)
    main, rest = await _events(sessions, recorder)
    assert main.event_id == f"batch:{row.id}" and main.cost_nanos == expected and not main.unpriced
    assert _column(main, "output_tokens") == sum(b["usage"]["completion_tokens"] for b in priced)
    assert rest.event_id == f"batch:{row.id}:unpriced" and rest.unpriced and rest.cost_nanos == 0
    assert rest.unpriced_reason == "no price for x"
    assert _column(rest, "output_tokens") == sum(b["usage"]["completion_tokens"] for b in unpriced)
    assert _column(rest, "input_tokens") == sum(b["usage"]["prompt_tokens"] for b in unpriced)
    settled = await _settled(sessions, row.id)
    assert settled.unpriced and settled.cost_nanos == expected


def test_a_batch_is_ready_only_when_terminal_and_its_files_are_there() -> None:
    def openai(status: str, completed: int, failed: int, out: str | None, err: str | None) -> dict[str, Any]:
        counts = {"total": completed + failed, "completed": completed, "failed": failed}
        return {"status": status, "request_counts": counts, "output_file_id": out, "error_file_id": err}

    assert is_ready("openai", openai("completed", 3, 1, "file-o", "file-e"))
    assert not is_ready("openai", openai("in_progress", 3, 1, None, None))
    assert not is_ready("openai", openai("finalizing", 3, 0, "file-o", None))
    # OpenAI can say completed before the output file id appears: billing then would bill $0
    assert not is_ready("openai", openai("completed", 3, 0, None, None))
    assert not is_ready("openai", openai("completed", 3, 1, "file-o", None))
    assert is_ready("openai", openai("cancelled", 0, 0, None, None))  # nothing done: settles at 0
    assert is_ready("openai", openai("failed", 0, 0, None, None))
    assert is_ready("openai", openai("expired", 2, 0, "file-o", None))
    assert is_ready("anthropic", {"processing_status": "ended"})
    assert not is_ready("anthropic", {"processing_status": "canceling"})
    anthropic_counts = {"processing": 1, "succeeded": 4, "errored": 2, "canceled": 1, "expired": 0}
    assert provider_counts("anthropic", {"request_counts": anthropic_counts}) == RequestCounts(8, 4, 3)


async def test_settling_a_batch_that_is_not_ready_raises_and_touches_nothing(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deployment = _deployment(mock, "openai", "gpt-4o-mini")
    upstream = BatchUpstream(client, deployment.target, where=deployment.id)
    batch = await _openai_batch(upstream, 3)
    early = {**batch, "output_file_id": None}
    row = await _row(sessions, enforcer, deployment, early)
    with pytest.raises(ValueError, match="not terminal at the provider, or its files are not there yet"):
        await settle_batch(row, early, **_args(deployment, upstream, enforcer, recorder, sessions))
    assert await _budget(enforcer) == (0, WORST)
    assert (await _settled(sessions, row.id)).settled_at is None

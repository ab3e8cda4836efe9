"""The poller's operational alerts, against the real mock provider on SQLite and PostgreSQL: a
batch the provider failed, or whose every line failed, alerts ``batch_failed``; a batch
retired as stale alerts ``batch_stale``; a good (or cancelled) batch alerts nothing; each
alert is decided once however many cycles (or pollers) see the batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_batch_poller import _created
from test_batch_settlement import NOW, _deployment, _jsonl, _line, _row

from spendgate.alerts import AlertRouting
from spendgate.alerts.operational import OperationalAlerts
from spendgate.alerts.settings import WebhookChannel
from spendgate.batches import BatchPoller, PollCycle, PolledDeployment
from spendgate.enforcement import Enforcer
from spendgate.ledger.recorder import Recorder
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.http import UpstreamClient
from spendgate.providers.mock import MockServer
from spendgate.stores.database.models import AlertOutboxRow, AlertRow

ROUTING = AlertRouting(
    channels={"webhook": WebhookChannel("webhook", "http://127.0.0.1:9/hook")},
    routes={"webhook": frozenset({"batch_alerts"})},
)


def _poller(
    sessions: async_sessionmaker[AsyncSession],
    enforcer: Enforcer,
    recorder: Recorder,
    client: UpstreamClient,
    mock: MockServer,
    instance: str,
    dep: Any = None,
) -> tuple[BatchPoller, Any]:
    """A poller with alerts for one deployment (default: openai ``gpt-4o-mini``)."""
    dep = dep or _deployment(mock, "openai", "gpt-4o-mini")
    alerts = OperationalAlerts(sessions, ROUTING, instance_id=instance, clock=lambda: NOW)
    poller = BatchPoller(
        sessions=sessions,
        enforcer=enforcer,
        recorder=recorder,
        deployments={dep.id: PolledDeployment(dep, BatchUpstream(client, dep.target, where=dep.id))}.get,
        instance_id=instance,
        max_age=timedelta(days=2),
        alerts=alerts,
    )
    return poller, dep


async def _alerts(sessions: async_sessionmaker[AsyncSession]) -> list[AlertRow]:
    async with sessions() as session:
        return list((await session.scalars(select(AlertRow).order_by(AlertRow.scope_id))).all())


async def test_failed_and_stale_batches_alert_once_each(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    poller, dep = _poller(sessions, enforcer, recorder, client, mock, "poller-a")
    upstream = BatchUpstream(client, dep.target)
    good = await _created(upstream, 3, polls=0)
    every_line_failed = await upstream.create_batch(
        (await upstream.upload_file("f.jsonl", _jsonl([_line(f"fail-{n}", 4, 2) for n in range(3)])))["id"],
        "/v1/chat/completions",
        headers={"x-mock-batch-polls": "0"},
    )
    mismatched = {**_line("r0", 4, 2), "url": "/v1/embeddings"}  # the provider fails the batch
    provider_failed = await upstream.create_batch(
        (await upstream.upload_file("m.jsonl", _jsonl([mismatched])))["id"], "/v1/chat/completions"
    )
    cancelled = await _created(upstream, 3, polls=5)
    await upstream.cancel_batch(cancelled["id"])
    rows = {
        "good": await _row(sessions, enforcer, dep, good, claim=False),
        "lines": await _row(sessions, enforcer, dep, every_line_failed, claim=False),
        "provider": await _row(sessions, enforcer, dep, provider_failed, claim=False),
        "cancelled": await _row(sessions, enforcer, dep, cancelled, claim=False),
        "missing": await _row(sessions, enforcer, dep, {**good, "id": "batch_gone"}, claim=False),
    }

    first = await poller.run_once(NOW)
    while (await poller.run_once(NOW)).seen:  # the cancellation shows on a later poll
        pass
    assert first.settled + first.stale >= 4
    alerts = await _alerts(sessions)
    by_batch = {a.scope_id: a for a in alerts}
    assert set(by_batch) == {rows["lines"].id, rows["provider"].id, rows["missing"].id}
    assert by_batch[rows["lines"].id].kind == "batch_failed"
    assert "none of its lines succeeded (3 failed)" in by_batch[rows["lines"].id].message
    assert by_batch[rows["provider"].id].kind == "batch_failed"
    assert "the provider reports it failed" in by_batch[rows["provider"].id].message
    stale = by_batch[rows["missing"].id]
    assert stale.kind == "batch_stale" and "404" in stale.message
    assert stale.scope_type == "batch" and stale.scope_name == "batch-model"
    assert stale.period_start == rows["missing"].created_at and stale.period_end == NOW
    assert (stale.extra or {})["labels"] == {
        "user_id": "user-1",
        "team_id": "team-1",
        "organization_id": "org-1",
        "customer_id": "eu-1",
    }
    async with sessions() as session:
        outbox = (await session.scalars(select(AlertOutboxRow))).all()
    assert sorted(o.alert_id for o in outbox) == sorted(a.id for a in alerts)
    assert {o.channel for o in outbox} == {"webhook"}

    # Another poller deciding the same alerts again (a repeat after a crash) adds nothing.
    other, _ = _poller(sessions, enforcer, recorder, client, mock, "poller-b")
    await other._alert(rows["lines"], "batch_failed", "again", NOW + timedelta(hours=1))
    await other._alert(rows["missing"], "batch_stale", "again", NOW + timedelta(hours=1))
    assert [a.id for a in await _alerts(sessions)] == [a.id for a in alerts]
    assert await poller.run_once(NOW + timedelta(minutes=1)) == PollCycle()


async def test_no_channel_taking_batch_alerts_records_nothing(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    poller, dep = _poller(sessions, enforcer, recorder, client, mock, "poller-a")
    assert poller.alerts is not None
    poller.alerts.routing = AlertRouting(
        channels=ROUTING.channels, routes={"webhook": frozenset({"budget_alerts"})}
    )
    gone = await _row(sessions, enforcer, dep, {"id": "batch_gone"}, claim=False)
    assert await poller.run_once(NOW) == PollCycle(seen=1, stale=1)
    assert (await _alerts(sessions)) == [] and gone.id


async def test_a_cancelled_anthropic_batch_alerts_nothing(
    mock: MockServer,
    client: UpstreamClient,
    enforcer: Enforcer,
    recorder: Recorder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Anthropic's cancelled batch just ``ended``, every line ``canceled``: the caller's
    choice, not a failure (an OpenAI batch whose every line failed alerts: above)."""
    dep = _deployment(mock, "anthropic", "claude-haiku-4-5", "batch-claude")
    upstream = BatchUpstream(client, dep.target)
    poller, _ = _poller(sessions, enforcer, recorder, client, mock, "poller-a", dep)
    requests = [
        {
            "custom_id": f"m{n}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "word " * (3 + n)}],
            },
        }
        for n in range(3)
    ]
    cancelled = await upstream.create_message_batch(requests, headers={"x-mock-batch-polls": "5"})
    await upstream.cancel_message_batch(cancelled["id"])
    row = await _row(sessions, enforcer, dep, cancelled, "anthropic", claim=False)
    while (await poller.run_once(NOW)).seen:
        pass
    ended = await upstream.retrieve_message_batch(cancelled["id"])
    assert ended["processing_status"] == "ended" and ended["request_counts"]["canceled"] == 3
    async with sessions() as session:
        settled = await session.get(type(row), row.id)
    assert settled is not None and settled.settled_at is not None
    assert await _alerts(sessions) == []

"""Delivery that loses nothing: a receiver failing (500, then connection refused) and coming
back gets every alert once; attempts are logged with growing delays; a sender cancelled
between claim and send is overtaken once its lease ends; a row failing past the retry
window is dead. The clock is moved, never slept."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_receivers import SLACK_TOKEN, HttpReceiver, slack_channel, webhook_channel
from sender_helpers import Clock, budget_alert, deliveries, outbox, record, routing
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from spendgate.alerts import AlertSender, retry_delay
from spendgate.alerts.store import Claim, OutboxRepository


async def test_receiver_down_then_back_gets_every_alert_once(
    engine: AsyncEngine, http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    route = routing(
        [slack_channel(http_receiver), webhook_channel(http_receiver)],
        retry_base_seconds=10.0,
        retry_max_seconds=600.0,
    )
    clock = Clock()
    await record(engine, [budget_alert(f"k{i}") for i in range(5)], route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    try:
        http_receiver.fail_with = 500
        first = await sender.run_once()
        assert (first.claimed, first.retried, first.sent) == (10, 10, 0)
        assert (await sender.run_once()).claimed == 0  # not due yet: backing off
        await http_receiver.stop()  # now connection refused
        for _ in range(3):
            clock.advance(600)
            cycle = await sender.run_once()
            assert (cycle.claimed, cycle.retried) == (10, 10)
        http_receiver.fail_with = None
        await http_receiver.start()
        clock.advance(600)
        back = await sender.run_once()
        assert (back.claimed, back.sent) == (10, 10)
        clock.advance(3600)
        assert (await sender.run_once()).claimed == 0
    finally:
        await sender.aclose()
    assert http_receiver.failures == 10
    assert len(http_receiver.on("/hook")) == 5
    assert len(http_receiver.on(f"/services/{SLACK_TOKEN}")) == 5
    ids = [r.headers["webhook-id"] for r in http_receiver.on("/hook")]
    assert len(set(ids)) == 5
    log = await deliveries(engine)
    assert len(log) == 50
    per_row: dict[int, list[tuple[int, str, int | None]]] = {}
    for d in log:
        per_row.setdefault(d.outbox_id, []).append((d.attempt, d.outcome, d.status_code))
    for attempts in per_row.values():
        assert [a for a, _, _ in attempts] == [1, 2, 3, 4, 5]
        assert [o for _, o, _ in attempts] == ["retry"] * 4 + ["sent"]
        assert attempts[0][2] == 500 and attempts[1][2] is None and attempts[4][2] == 200
    errors = {d.error for d in log if d.outcome == "retry"}
    assert any(e and "500" in e for e in errors) and any(e and "ConnectError" in e for e in errors)
    rows = await outbox(engine)
    assert all(r.status == "sent" and r.attempts == 5 for r in rows)
    for text in (caplog.text, *(e or "" for e in errors)):
        assert SLACK_TOKEN not in text and "hooktoken123" not in text


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    assert [retry_delay(n, 5, 1800, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(20, 5, 1800, rng=lambda: 1.0) == 1800
    assert retry_delay(3, 5, 1800, rng=lambda: 0.0) == 10  # the jitter draws within [½, 1]


@pytest.mark.parametrize("attempt", [1000, 1030, 1100, 10**6])
def test_backoff_after_very_many_attempts_is_the_cap(attempt: int) -> None:
    assert retry_delay(attempt, 5.0, 1800.0, rng=lambda: 1.0) == 1800
    assert retry_delay(attempt, 0.001, 86400.0, rng=lambda: 0.0) == 43200


async def test_a_row_failing_for_the_retry_window_is_dead(
    engine: AsyncEngine, http_receiver: HttpReceiver
) -> None:
    route = routing([webhook_channel(http_receiver)], retry_hours=24.0, retry_base_seconds=60.0,
                    retry_max_seconds=3600.0)  # fmt: skip
    clock = Clock()
    await record(engine, [budget_alert("k-dead")], route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    http_receiver.fail_with = 503
    try:
        attempts = 0
        while True:
            cycle = await sender.run_once()
            attempts += cycle.claimed
            if cycle.dead:
                break
            clock.advance(3600)
            assert attempts < 100
        assert (await sender.run_once()).claimed == 0
    finally:
        await sender.aclose()
    [row] = await outbox(engine)
    assert row.status == "dead" and row.attempts == attempts
    log = await deliveries(engine)
    assert log[-1].outcome == "dead" and log[-1].attempted_at - row.created_at >= timedelta(hours=24)
    assert all(d.outcome == "retry" for d in log[:-1]) and attempts >= 24


async def test_a_sender_cancelled_between_claim_and_send_is_overtaken_once(
    engine: AsyncEngine, http_receiver: HttpReceiver
) -> None:
    route = routing([webhook_channel(http_receiver)], lease_seconds=60.0)
    clock = Clock()
    await record(engine, [budget_alert("k-crash")], route, clock())
    claimed = asyncio.Event()

    async def hang(claim: Claim) -> None:
        claimed.set()
        await asyncio.Event().wait()  # killed here, between claim and send

    doomed = AlertSender(
        async_sessionmaker(engine), route, instance_id="doomed", clock=clock, before_send=hang
    )
    task = asyncio.create_task(doomed.run_once())
    await claimed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await doomed.aclose()

    restarted = AlertSender(async_sessionmaker(engine), route, instance_id="restarted", clock=clock)
    try:
        assert (await restarted.run_once()).claimed == 0  # still under the dead sender's lease
        assert http_receiver.received == []
        clock.advance(61)
        cycle = await restarted.run_once()
        assert (cycle.claimed, cycle.sent) == (1, 1)
        clock.advance(3600)
        assert (await restarted.run_once()).claimed == 0
    finally:
        await restarted.aclose()
    assert len(http_receiver.on("/hook")) == 1
    [only] = await deliveries(engine)
    assert (only.attempt, only.outcome, only.sender) == (1, "sent", "restarted")


async def test_two_senders_at_once_send_each_row_once(
    engine: AsyncEngine, http_receiver: HttpReceiver
) -> None:
    """Two leaders (a lost leader lock): the claims keep every row to one sender."""
    route = routing([slack_channel(http_receiver), webhook_channel(http_receiver)])
    clock = Clock()
    await record(engine, [budget_alert(f"k{i}") for i in range(10)], route, clock())
    senders = [
        AlertSender(async_sessionmaker(engine), route, instance_id=f"s{i}", clock=clock) for i in range(2)
    ]
    try:
        cycles = await asyncio.gather(*(s.run_once() for s in senders))
    finally:
        for s in senders:
            await s.aclose()
    assert sum(c.sent for c in cycles) == 20
    assert len(http_receiver.received) == 20
    assert len(await deliveries(engine)) == 20


async def test_a_sender_process_killed_between_claim_and_send_is_overtaken_once(
    engine: AsyncEngine, database_url: str, http_receiver: HttpReceiver
) -> None:
    hook = webhook_channel(http_receiver)
    route = routing([hook], lease_seconds=60.0)
    start = datetime.now(UTC)
    await record(engine, [budget_alert("k-kill9")], route, start)
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("sender_child.py")), database_url, hook.url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 30)
    assert line.startswith(b"CLAIMED")
    child.send_signal(signal.SIGKILL)
    await child.wait()

    clock = Clock(datetime.now(UTC))
    restarted = AlertSender(async_sessionmaker(engine), route, instance_id="restarted", clock=clock)
    try:
        assert (await restarted.run_once()).claimed == 0  # the dead process's lease still holds
        clock.advance(61)
        assert (await restarted.run_once()).sent == 1
        clock.advance(3600)
        assert (await restarted.run_once()).claimed == 0
    finally:
        await restarted.aclose()
    assert len(http_receiver.on("/hook")) == 1
    [only] = await deliveries(engine)
    assert (only.attempt, only.outcome, only.sender) == (1, "sent", "restarted")


async def test_an_error_body_with_a_nul_is_recorded_clean(
    engine: AsyncEngine, http_receiver: HttpReceiver
) -> None:
    route = routing([slack_channel(http_receiver)], retry_base_seconds=10.0, retry_max_seconds=600.0)
    clock = Clock()
    await record(engine, [budget_alert("nul")], route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    try:
        http_receiver.fail_with = 500
        http_receiver.fail_body = "bad\x00body\x07\r\nnext" + "x" * 1000
        cycle = await sender.run_once()
        assert (cycle.claimed, cycle.retried, cycle.errors) == (1, 1, 0)
    finally:
        await sender.aclose()
    (row,) = await deliveries(engine)
    assert row.error is not None and row.error.startswith("Slack answered 500: bad body next")
    assert not any(ord(c) < 32 for c in row.error) and len(row.error) <= 500
    (out,) = await outbox(engine)
    assert out.attempts == 1 and out.last_error == row.error


async def test_an_error_the_database_refuses_is_recorded_without_its_text(
    engine: AsyncEngine, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_finish = OutboxRepository.finish

    async def refusing(self: OutboxRepository, claim: Claim, **kw: Any) -> bool:
        if kw["error"] and "poison" in kw["error"]:
            raise ValueError("the database refuses this text")
        return await real_finish(self, claim, **kw)

    monkeypatch.setattr(OutboxRepository, "finish", refusing)
    route = routing([slack_channel(http_receiver)], retry_base_seconds=10.0, retry_max_seconds=600.0)
    clock = Clock()
    await record(engine, [budget_alert("poison")], route, clock())
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t1", clock=clock)
    try:
        http_receiver.fail_with = 500
        http_receiver.fail_body = "poison"
        cycle = await sender.run_once()
        assert (cycle.claimed, cycle.retried, cycle.errors) == (1, 1, 0)
    finally:
        await sender.aclose()
    (row,) = await deliveries(engine)
    assert row.outcome == "retry" and row.status_code == 500
    assert row.error == "the error text could not be recorded"

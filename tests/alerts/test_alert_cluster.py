"""Issue #15's proof: three ``spendgate serve`` processes on PostgreSQL + Redis drive a key past
50, 80 and 100 % of its daily budget in parallel; real local receivers (an HTTP server for
Slack and the webhook, aiosmtpd for email) get exactly one alert per threshold per channel,
the webhooks signed; then the clock of all three moves to the next day (libfaketime, a real
process clock, not a patched function): the day that ended is resolved once and the next
day's crossings alert once again.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import pytest_asyncio
from alert_receivers import WHSEC, HttpReceiver, SmtpReceiver, until
from standardwebhooks.webhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from cluster_helpers import Cluster, fetch, require_redis, running_cluster
from limits_helpers import Admin, cent_call

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DAY_ONE = "@2026-12-10 01:00:00"  # early in the day: no forecast fires (it waits for 10 %)
DAY_TWO = "@2026-12-11 01:00:00"
_ID = re.compile(r"alert_[0-9a-f]{40}")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    http = HttpReceiver()
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _set_clock(path: Path, timestamp: str) -> None:
    """Move the processes' clock at once: libfaketime re-reads the file at every call, and a
    file caught truncated but not yet rewritten reads as "no fake time", the real clock (a
    webhook stamped today, operational alerts from a clock four days back)."""
    new = path.with_suffix(".new")
    new.write_text(timestamp)
    os.replace(new, path)


@pytest.fixture
def clock(tmp_path: Path) -> Path:
    """The file libfaketime reads the processes' time from (re-read at every call)."""
    path = tmp_path / "clock"
    path.write_text(DAY_ONE)
    return path


@pytest.fixture
def cluster(
    mock_server: MockServer,
    postgres_url: str,
    tmp_path: Path,
    clock: Path,
    receiver: HttpReceiver,
    smtp: SmtpReceiver,
) -> Iterator[Cluster]:
    require_redis()
    if not FAKETIME.exists():
        pytest.fail(f"{FAKETIME} is missing: install Debian's faketime package (.ci/run does)", pytrace=False)
    price = {"input_cost_per_token": "0", "output_cost_per_token": "0.0001"}
    model = {
        "model_name": "cent",
        "litellm_params": {"model": "openai/cent-model", "api_base": mock_server.base_url, **price},
    }
    with running_cluster(
        tmp_path,
        postgres_url,
        f"sgalert-{uuid.uuid4().hex[:12]}",
        [model],
        env={
            "LD_PRELOAD": str(FAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(clock),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
        environment={
            "SLACK_WEBHOOK_URL": f"{receiver.base}/slack",
            "WEBHOOK_URL": f"{receiver.base}/hook",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "SMTP_TLS": "false",
            "SMTP_SENDER_EMAIL": "alerts@spendgate.test",
        },
        alerting=["slack", "webhook", "email"],
        alerting_args={
            "webhook_secret": WHSEC,
            "email_recipients": ["finance@example.test"],
            "send_interval_seconds": 0.3,
            "resolve_interval_seconds": 0.5,
            "retry_base_seconds": 0.5,
        },
    ) as running:
        yield running


async def _drive(cluster: Cluster, raw: str) -> int:
    """300 one-cent calls spread over the three processes against a $1.00 daily budget."""
    clients = [
        openai.AsyncOpenAI(base_url=f"{u}/v1", api_key=raw, max_retries=0, timeout=60) for u in cluster.urls
    ]
    try:
        results = await asyncio.gather(*(cent_call(clients[i % 3]) for i in range(300)))
    finally:
        for c in clients:
            await c.close()
    return sum(1 for status, _, _ in results if status == 200)


def _ids(receiver: HttpReceiver, smtp: SmtpReceiver) -> dict[str, Counter[str]]:
    """Each channel's delivered alert ids, counted."""
    hooks = [r.json()["alert_id"] for r in receiver.on("/hook")]
    slack = [m for r in receiver.on("/slack") for m in set(_ID.findall(r.body.decode()))]
    mail = [m for _, msg in smtp.messages for m in set(_ID.findall(msg.get_body(("plain",)).get_content()))]  # type: ignore[union-attr]
    return {"webhook": Counter(hooks), "slack": Counter(slack), "email": Counter(mail)}


async def _alerts(cluster: Cluster, key_id: str) -> dict[str, tuple[str, str, str]]:
    rows = await fetch(
        cluster.database_url,
        "SELECT id, kind, threshold, period_start FROM alerts WHERE scope_type = 'key' AND scope_id = $1",
        key_id,
    )
    return {r["id"]: (r["kind"], r["threshold"], r["period_start"].date().isoformat()) for r in rows}


async def _each_once(
    cluster: Cluster, delivered: dict[str, Counter[str]], key_alerts: dict[str, Any]
) -> None:
    """Every channel got each of the key's alerts once, and nothing twice. Anything else it
    got is another recorded alert (under load an instance may raise an operational one,
    such as a slow ledger: real, and not this test's subject)."""
    recorded = {r["id"]: r["kind"] for r in await fetch(cluster.database_url, "SELECT id, kind FROM alerts")}
    for channel, seen in delivered.items():
        assert all(n == 1 for n in seen.values()), (channel, seen)
        assert set(key_alerts) <= set(seen), (channel, seen)
        others = {i: recorded.get(i) for i in set(seen) - set(key_alerts)}
        assert all(kind is not None and not kind.startswith("budget_") for kind in others.values()), others


async def test_each_threshold_alerts_once_per_channel_across_three_gateways_and_again_next_day(
    cluster: Cluster, clock: Path, receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    admin = Admin(cluster.urls[0])
    try:
        raw = admin.key(key_alias="alerting-key", max_budget=1.00, budget_duration="1d")
    finally:
        admin.close()
    key_id = hash_key(raw)
    assert await _drive(cluster, raw) == 100  # $1.00 spent: 50, 80 and 100 % reached

    def delivered(n: int) -> bool:
        return all(sum(c.values()) >= n for c in _ids(receiver, smtp).values())

    await until(lambda: delivered(3), timeout=60)
    await asyncio.sleep(3)  # ten more sender cycles: nothing more may arrive
    day_one = await _alerts(cluster, key_id)
    assert sorted(day_one.values()) == [
        ("budget_crossed", "100", "2026-12-10"),
        ("budget_crossed", "50", "2026-12-10"),
        ("budget_crossed", "80", "2026-12-10"),
    ]
    await _each_once(cluster, _ids(receiver, smtp), day_one)

    _set_clock(clock, DAY_TWO)
    assert await _drive(cluster, raw) == 100  # a new period: the budget is whole again
    await until(lambda: delivered(7), timeout=60)
    await asyncio.sleep(3)
    both = await _alerts(cluster, key_id)
    assert sorted(v for k, v in both.items() if k not in day_one) == [
        ("budget_crossed", "100", "2026-12-11"),
        ("budget_crossed", "50", "2026-12-11"),
        ("budget_crossed", "80", "2026-12-11"),
        ("budget_resolved", "", "2026-12-10"),
    ]
    await _each_once(cluster, _ids(receiver, smtp), both)

    verifier = Webhook(WHSEC)
    for hook in receiver.on("/hook"):
        # The signature, checked with the library's own signing: the senders' clock is days
        # ahead of this process's, so verify()'s five-minute tolerance would refuse it.
        sent_at = datetime.fromtimestamp(int(hook.headers["webhook-timestamp"]), UTC)
        assert sent_at.date().isoformat() in ("2026-12-10", "2026-12-11")
        expected = verifier.sign(hook.headers["webhook-id"], sent_at, hook.body.decode())
        assert expected in hook.headers["webhook-signature"].split(" ")
        body: dict[str, Any] = orjson.loads(hook.body)
        assert hook.headers["webhook-id"].startswith("msg_")
        if body["kind"] == "budget_crossed":
            assert body["token"] == key_id and body["key_alias"] == "alerting-key"
            assert body["max_budget"] == 1.0 and body["event_group"] == "key"
            assert body["event"] == (
                "budget_crossed" if body["threshold_percent"] == "100" else "threshold_crossed"
            )
    for envelope, _ in smtp.messages:
        assert envelope.rcpt_tos == ["finance@example.test"]

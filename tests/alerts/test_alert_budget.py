"""Budget alerts from crossings to decision rows (SQLite and PostgreSQL): named and worded
off the request path, one row however many instances record it, a retry when the database
refuses, and one resolution when the period ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

from alert_receivers import SmtpReceiver, email_channel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from spendgate.alerts import Alert, AlertRouting, alert_id_of
from spendgate.alerts.budget import describe
from spendgate.alerts.email import alert_email, send_email
from spendgate.alerts.recorder import AlertRecorder
from spendgate.alerts.resolver import resolve_ended
from spendgate.alerts.settings import WebhookChannel
from spendgate.alerts.store import alert_from_row
from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit
from spendgate.enforcement.crossings import Crossing, alert_of
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import AlertOutboxRow, AlertRow, VirtualKey

USD = 1_000_000_000
DAY = datetime(2026, 12, 5, tzinfo=UTC)
ROUTING = AlertRouting(channels={"webhook": WebhookChannel("webhook", "http://127.0.0.1:9/hook", None)})


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _crossing(key_id: str, threshold: int, spend: int) -> Crossing:
    budget = BudgetLimit.of(Scope("key", key_id), "1d", USD, main=True)  # its max_budget
    return Crossing(
        "threshold",
        budget,
        spend,
        USD,
        _ms(DAY),
        _ms(DAY + timedelta(days=1)),
        _ms(DAY + timedelta(hours=15)),
        f"m{threshold}",
        Decimal(threshold),
    )


async def _key(engine: AsyncEngine, key_id: str, alias: str, emails: dict[str, list[str]]) -> None:
    async with AsyncSession(engine) as session, session.begin():
        session.add(
            VirtualKey(
                token=key_id,
                key_id=key_id,
                key_prefix="sk-…",
                key_alias=alias,
                metadata_={"max_budget_alert_emails": emails},
            )
        )


async def _rows(engine: AsyncEngine) -> list[AlertRow]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(AlertRow).order_by(AlertRow.threshold))).all())


async def test_a_crossing_is_named_worded_and_recorded_once_by_two_instances(engine: AsyncEngine) -> None:
    await _key(engine, "kh-1", "checkout-bot", {"50": ["owner@example.com"], "90": ["cfo@example.com"]})
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    now = DAY + timedelta(hours=15)
    recorders = [AlertRecorder(sessions, ROUTING, clock=lambda: now) for _ in range(2)]
    for r in recorders:
        await r.start()
    try:
        for r in recorders:  # both instances saw the same crossing
            r.put([(alert_of(_crossing("kh-1", 50, 55 * USD // 100)), None)])
        for r in recorders:
            await r.flush()
    finally:
        for r in recorders:
            await r.aclose()
    assert sum(r.recorded for r in recorders) == 1
    [row] = await _rows(engine)
    alert = alert_from_row(row)
    assert (alert.kind, alert.scope_id, alert.scope_name, alert.threshold) == (
        "budget_crossed",
        "kh-1",
        "checkout-bot",
        Decimal(50),
    )
    assert alert.message == "key checkout-bot has used 50% of its daily budget ($0.55 of $1.00)."
    assert alert.labels["token"] == "kh-1" and alert.labels["key_alias"] == "checkout-bot"
    assert alert.extra["alert_emails"] == ["owner@example.com"]
    assert (alert.period_start, alert.period_end, alert.reset_at) == (
        DAY,
        DAY + timedelta(days=1),
        DAY + timedelta(days=1),
    )
    async with AsyncSession(engine) as session:
        outbox = (await session.scalars(select(AlertOutboxRow))).all()
    assert [(o.alert_id, o.channel) for o in outbox] == [(row.id, "webhook")]


async def test_an_alert_the_database_refuses_is_handed_back_for_a_retry(tmp_path: object) -> None:
    broken = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", connect_timeout=1)
    retried: list[str] = []
    recorder = AlertRecorder(async_sessionmaker(broken), ROUTING)
    await recorder.start()
    try:
        recorder.put([(alert_of(_crossing("kh-2", 80, USD)), lambda: retried.append("again"))])
        await recorder.flush()
    finally:
        await recorder.aclose()
        await broken.dispose()
    assert retried == ["again"] and recorder.failed == 1 and recorder.recorded == 0


async def test_a_full_queue_hands_alerts_back_at_once(engine: AsyncEngine) -> None:
    retried: list[int] = []
    recorder = AlertRecorder(async_sessionmaker(engine), ROUTING, capacity=2)  # not started
    recorder.put((alert_of(_crossing("kh-3", 50, USD)), partial(retried.append, i)) for i in range(5))
    assert retried == [2, 3, 4]


async def test_an_ended_period_is_resolved_once(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    recorder = AlertRecorder(sessions, ROUTING, clock=lambda: DAY + timedelta(hours=15))
    await recorder.start()
    try:
        recorder.put((alert_of(_crossing("kh-4", t, USD)), None) for t in (50, 80, 100))
        await recorder.flush()
    finally:
        await recorder.aclose()

    async def resolve(at: datetime) -> int:
        async with sessions.begin() as session:
            return await resolve_ended(session, ROUTING, at)

    assert await resolve(DAY + timedelta(hours=23)) == 0  # still running
    assert await resolve(DAY + timedelta(days=1, minutes=1)) == 1
    assert await resolve(DAY + timedelta(days=1, minutes=2)) == 0  # once
    assert await resolve(DAY + timedelta(days=5)) == 0  # and not again later
    resolved = [alert_from_row(r) for r in await _rows(engine) if r.kind == "budget_resolved"]
    [alert] = resolved
    assert alert.threshold is None and alert.period_start == DAY
    assert alert.extra == {"reason": "period_ended", "thresholds_crossed": ["50", "80", "100"]}
    assert alert.message == "key kh-4: the daily budget period ended; spend starts again from $0.00."


async def test_an_alert_outside_budgets_is_recorded_as_given(engine: AsyncEngine) -> None:
    recorder = AlertRecorder(async_sessionmaker(engine), ROUTING)
    await recorder.start()
    try:
        recorder.put(
            [(Alert(kind="unpriced_usage", scope_type="model", scope_id="m", message="as is"), None)]
        )
        await recorder.flush()
    finally:
        await recorder.aclose()
    [row] = await _rows(engine)
    assert (row.kind, row.message, row.scope_name) == ("unpriced_usage", "as is", None)


async def test_an_entitys_own_recipients_get_its_threshold_email(
    engine: AsyncEngine, smtp_receiver: SmtpReceiver
) -> None:
    await _key(engine, "kh-5", "billing-bot", {"80": ["owner@example.test", "finance@example.test"]})
    async with AsyncSession(engine) as session:
        alert = await describe(session, alert_of(_crossing("kh-5", 80, 81 * USD // 100)))
        other = await describe(session, alert_of(_crossing("kh-5", 50, 51 * USD // 100)))
    channel = email_channel(smtp_receiver)  # finance@ and ops@ configured
    for a in (alert, other):
        message = alert_email(channel, a, alert_id_of(a), "msg_1", DAY, None)
        assert (await send_email(channel, message, 10)).ok
    by_subject = {m["Subject"]: envelope.rcpt_tos for envelope, m in smtp_receiver.messages}
    assert by_subject == {
        "[spendgate] Budget 80% crossed: key billing-bot (1d)": [
            "finance@example.test",
            "ops@example.test",
            "owner@example.test",
        ],
        "[spendgate] Budget 50% crossed: key billing-bot (1d)": ["finance@example.test", "ops@example.test"],
    }

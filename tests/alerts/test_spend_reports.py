"""Scheduled spend reports (issue #15): once a Kolkata day has ended, one report per
(report, scope, day), with the figures ``/global/spend/report`` shows for that day, decided
once however many schedulers run, delivered to a real HTTP receiver (Slack, signed webhook)
and a real SMTP server (aiosmtpd); the next day gives the next report; a missed run is
caught up within the look-back only. SQLite and PostgreSQL, an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from alert_receivers import (
    SLACK_TOKEN,
    WHSEC,
    HttpReceiver,
    SmtpReceiver,
    email_channel,
    slack_channel,
    webhook_channel,
)
from report_helpers import (
    DAY,
    DAY_START,
    Admin,
    Ledger,
    alert_rows,
    build_ledger,
    global_report_day,
    local_days,
    spec,
)
from sender_helpers import Clock, routing
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from spendgate.alerts import AlertSender
from spendgate.jobs import JobRunner, lock_for
from spendgate.jobs.report_content import GlobalBudget
from spendgate.jobs.report_scheduler import ReportScheduler, report_job
from spendgate.stores.database import create_engine

GRACE = timedelta(seconds=300)


@pytest_asyncio.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[tuple[Admin, Ledger]]:
    admin = Admin(engine)
    try:
        yield admin, await build_ledger(engine, admin)
    finally:
        await admin.aclose()


def scheduler(engine: AsyncEngine, clock: Clock, *specs: object, **kw: object) -> ReportScheduler:
    return ReportScheduler(
        async_sessionmaker(engine, expire_on_commit=False),
        list(specs) or [spec()],  # type: ignore[arg-type]
        default_tz="UTC",
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


async def test_a_kolkata_day_is_reported_once_with_the_spend_report_figures(
    engine: AsyncEngine,
    world: tuple[Admin, Ledger],
    http_receiver: HttpReceiver,
    smtp_receiver: SmtpReceiver,
) -> None:
    admin, ledger = world
    # Noon in Kolkata on 03-10: the last completed day is 03-09, which the first run reports.
    clock = Clock(DAY_START + timedelta(hours=6))
    budget = GlobalBudget(50 * 10**9, "1mo", "UTC")
    jobs = scheduler(engine, clock, global_budget=budget)
    first = await jobs.run_once()
    assert (first.recorded, first.already, first.failed) == (1, 0, 0)
    # The day ends at 18:30 UTC; its report waits for the grace period.
    clock.now = DAY_START + DAY + GRACE - timedelta(seconds=1)
    assert (await jobs.run_once()).recorded == 0
    clock.now = DAY_START + DAY + GRACE
    assert (await jobs.run_once()).recorded == 1
    assert (await jobs.run_once()).recorded == 0  # already recorded
    rows = await alert_rows(engine)
    assert local_days(a for a, _ in rows) == ["2026-03-09", "2026-03-10"]
    alert, outbox = rows[1]
    assert (alert.kind, alert.scope_type, alert.scope_id, alert.window) == (
        "spend_report",
        "global",
        "",
        "daily-kolkata",
    )
    assert (alert.period_start, alert.period_end) == (DAY_START, DAY_START + DAY)
    assert [o.channel for o in outbox] == ["email", "slack", "webhook"]

    # The report's figures are /global/spend/report's for that day, and the events' sums.
    day = await global_report_day(admin, "2026-03-10")
    start, end = DAY_START, DAY_START + DAY
    total = ledger.spent(start, end)
    assert total == sum(spent for spent, _ in day.values()) == alert.spend_nanos
    report = alert.extra["extra"]["report"]  # type: ignore[index]
    assert report["spend_nanos"] == total and report["requests"] == ledger.count(start, end)
    assert report["failed_requests"] == 1
    assert report["previous_spend_nanos"] == ledger.spent(start - DAY, start)
    assert report["change_percent"] is not None
    tops = {b["dimension"]: b for b in report["breakdowns"]}
    models: dict[str, tuple[int, int]] = {}
    for _, per_model in day.values():
        for model, (spent, tokens) in per_model.items():
            was = models.get(model, (0, 0))
            models[model] = (was[0] + spent, was[1] + tokens)
    assert {
        line["id"]: (line["spend_nanos"], line["total_tokens"]) for line in tops["model"]["top"]
    } == models
    assert [line["id"] for line in tops["model"]["top"]] == sorted(models, key=lambda m: -models[m][0])
    teams = {line["name"]: line["spend_nanos"] for line in tops["team"]["top"]}
    assert teams == {"Alpha": day["Alpha"][0], "t2": day["t2"][0], "(no team)": day["Unassigned Team"][0]}
    keys = {line["name"]: line["spend_nanos"] for line in tops["key"]["top"]}
    assert keys == {
        "ka": ledger.spent(start, end, lambda e: e.api_key == ledger.keys["ka"]),
        "kb": ledger.spent(start, end, lambda e: e.api_key == ledger.keys["kb"]),
        "(no key)": ledger.spent(start, end, lambda e: e.api_key is None),
    }
    # Budgets at the day's end: the global month (UTC) and Alpha's month and day (UTC).
    budgets = {(b["scope_type"], b["scope_id"], b["window"]): b for b in report["budgets"]}
    month = datetime(2026, 3, 1, tzinfo=UTC)
    assert budgets[("global", "", "1mo")]["spend_nanos"] == ledger.spent(month, end)
    assert budgets[("global", "", "1mo")]["max_budget_nanos"] == 50 * 10**9
    alpha = lambda e: e.team_id == "t1"  # noqa: E731
    assert budgets[("team", "t1", "1mo")]["spend_nanos"] == ledger.spent(month, end, alpha)
    utc_day = datetime(2026, 3, 10, tzinfo=UTC)
    daily = budgets[("team", "t1", "1d")]
    assert daily["spend_nanos"] == ledger.spent(utc_day, end, alpha) == 1_234_567_908
    assert daily["max_budget_nanos"] == 2 * 10**9 and daily["percent"] == "61.7"
    assert ("team", "t2", "1mo") not in budgets  # t2 has no budget

    # Delivery: one message per channel, with the figures; the webhook is signed.
    route = routing(
        [slack_channel(http_receiver), webhook_channel(http_receiver), email_channel(smtp_receiver)]
    )
    sender = AlertSender(async_sessionmaker(engine), route, instance_id="t", clock=lambda: datetime.now(UTC))
    try:
        cycle = await sender.run_once()
    finally:
        await sender.aclose()
    assert (cycle.sent, cycle.retried) == (6, 0)  # two days × three channels
    hooks = [Webhook(WHSEC).verify(h.body, h.headers) for h in http_receiver.on("/hook")]
    (body,) = [h for h in hooks if h["period_start"] == DAY_START.isoformat()]
    assert body["event"] == "spend_report" and body["kind"] == "spend_report"
    assert body["event_group"] == "proxy" and body["alert_type"] == "spend_reports"
    assert body["spend_nanos"] == total and body["extra"]["report"]["spend_nanos"] == total
    slack = [r.json() for r in http_receiver.on(f"/services/{SLACK_TOKEN}")]
    (message,) = [s for s in slack if "2026-03-10" in s["blocks"][0]["text"]["text"]]
    assert message["blocks"][0]["text"]["text"] == "Daily spend report: global, 2026-03-10"
    text = str(message["blocks"])
    assert "Top models" in text and "Alpha, 1d budget: $1.234567908 of $2.00 (61.7%)" in text
    mails = [m for _, m in smtp_receiver.messages if "2026-03-10" in str(m["Subject"])]
    assert len(mails) == 1
    assert mails[0]["Subject"] == "[spendgate] Daily spend report: global, 2026-03-10"
    plain = mails[0].get_body(("plain",))
    html = mails[0].get_body(("html",))
    assert plain is not None and html is not None
    assert "Top keys" in plain.get_content() and "<h3" in html.get_content()


async def test_two_schedulers_record_each_report_once(
    engine: AsyncEngine, world: tuple[Admin, Ledger], database_url: str
) -> None:
    clock = Clock(DAY_START + DAY + GRACE)
    other = create_engine(database_url)
    try:
        a, b = scheduler(engine, clock), scheduler(other, clock)
        cycles = await asyncio.gather(*(s.run_once() for _ in range(3) for s in (a, b)))
        assert sum(c.recorded for c in cycles) == 1 and sum(c.failed for c in cycles) == 0
        # Two job runners, each with its own leader lock, running the job for a while.
        clock.now += DAY
        runners = [JobRunner(lock_for(e, None)) for e in (engine, other)]
        for runner, jobs in zip(runners, (a, b), strict=True):
            runner.add(report_job(jobs, 0.02))
            await runner.start()
        # Until the next day's report is in (a loaded machine takes longer than a fixed
        # sleep), then a little longer: a second recording would show in the rows below.
        for _ in range(300):
            if len(local_days(a for a, _ in await alert_rows(engine))) == 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        for runner in runners:
            await runner.close()
    finally:
        await other.dispose()
    rows = await alert_rows(engine)
    assert local_days(a for a, _ in rows) == ["2026-03-10", "2026-03-11"]
    assert all(len(outbox) == 3 for _, outbox in rows)


async def test_the_next_day_and_a_missed_run(engine: AsyncEngine, world: tuple[Admin, Ledger]) -> None:
    admin, ledger = world
    clock = Clock(DAY_START + DAY + GRACE)
    two_back = spec("catch-up", lookback=2)
    jobs = scheduler(engine, clock, spec(), two_back)
    # The first run: the last completed day (03-10), and for the look-back of two 03-09 too.
    assert (await jobs.run_once()).recorded == 3
    clock.now += DAY
    assert (await jobs.run_once()).recorded == 2  # 03-11
    # All instances down for three days: the default look-back sends the last day only,
    # the report with a look-back of two its last two days; nothing older.
    clock.now += 4 * DAY
    assert (await jobs.run_once()).recorded == 3
    rows = await alert_rows(engine)
    days = {
        name: local_days(a for a, _ in rows if a.window == name) for name in ("daily-kolkata", "catch-up")
    }
    assert days == {
        "daily-kolkata": ["2026-03-10", "2026-03-11", "2026-03-15"],
        "catch-up": ["2026-03-09", "2026-03-10", "2026-03-11", "2026-03-14", "2026-03-15"],
    }
    next_day = next(a for a, _ in rows if a.window == "daily-kolkata" and local_days([a]) == ["2026-03-11"])
    assert next_day.spend_nanos == ledger.spent(DAY_START + DAY, DAY_START + 2 * DAY)
    day = await global_report_day(admin, "2026-03-11")
    assert next_day.spend_nanos == sum(spent for spent, _ in day.values())


async def test_team_reports_one_per_team(engine: AsyncEngine, world: tuple[Admin, Ledger]) -> None:
    admin, ledger = world
    clock = Clock(DAY_START + DAY + GRACE)
    jobs = scheduler(
        engine, clock, spec("teams", team_ids=("t1", "t2"), breakdowns=("model", "key", "team"), top_n=1)
    )
    assert (await jobs.run_once()).recorded == 2
    rows = [a for a, _ in await alert_rows(engine)]
    start, end = DAY_START, DAY_START + DAY
    day = await global_report_day(admin, "2026-03-10")
    by_team = {a.scope_id: a for a in rows}
    assert by_team["t1"].scope_name == "Alpha" and by_team["t1"].spend_nanos == day["Alpha"][0]
    assert by_team["t2"].spend_nanos == day["t2"][0] == ledger.spent(start, end, lambda e: e.team_id == "t2")
    report = by_team["t2"].extra["extra"]["report"]  # type: ignore[index]
    tops = {b["dimension"]: b for b in report["breakdowns"]}
    assert set(tops) == {"model", "key"}  # no team breakdown in a team's report
    models = day["t2"][1]
    best = max(models, key=lambda m: models[m][0])
    assert [line["id"] for line in tops["model"]["top"]] == [best]
    assert tops["model"]["rest_count"] == len(models) - 1
    assert tops["model"]["rest_spend_nanos"] == sum(s for m, (s, _) in models.items() if m != best)
    assert [line["name"] for line in tops["key"]["top"]] == ["kb"]
    assert report["budgets"] == []
    assert by_team["t1"].extra["labels"] == {"team_id": "t1", "team_alias": "Alpha"}  # type: ignore[index]
    assert [b["window"] for b in by_team["t1"].extra["extra"]["report"]["budgets"]] == ["1mo", "1d"]  # type: ignore[index]


@pytest.mark.parametrize("frequency", ["weekly", "monthly"])
async def test_weeks_and_months(engine: AsyncEngine, world: tuple[Admin, Ledger], frequency: str) -> None:
    from spendgate.core.periods import parse_window

    window = parse_window("1w" if frequency == "weekly" else "1mo")
    clock = Clock(datetime(2026, 4, 1, 12, tzinfo=UTC))  # Wednesday 2026-04-01
    jobs = scheduler(engine, clock, spec("w", frequency=frequency, window=window))
    assert (await jobs.run_once()).recorded == 1
    ((alert, _),) = await alert_rows(engine)
    _, ledger = world
    if frequency == "weekly":  # Monday 03-23 to Monday 03-30, Kolkata
        assert local_days([alert]) == ["2026-03-23"]
    else:
        assert local_days([alert]) == ["2026-03-01"]
        report = alert.extra["extra"]["report"]  # type: ignore[index]
        assert report["period_label"] == "2026-03"
        assert alert.spend_nanos == ledger.spent(alert.period_start, alert.period_end or alert.period_start)
        assert alert.spend_nanos == sum(e.cost_nanos for e in ledger.events)

"""On random events, every report equals the sum of the raw events, in several zones."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_helpers import clear_database
from spendgate.core.periods import period_for
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.reports import Report, spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine

ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
LO = datetime(2026, 3, 20, tzinfo=UTC)
HI = datetime(2026, 4, 10, tzinfo=UTC)
ATTR = {
    "key": "api_key",
    "user": "user_id",
    "team": "team_id",
    "org": "organization_id",
    "customer": "end_user",
}
COLUMN = {"model": "model", "provider": "provider", "deployment": "deployment_id"}


@st.composite
def events(draw: st.DrawFn) -> list[SpendEvent]:
    n = draw(st.integers(min_value=0, max_value=40))
    out = []
    for i in range(n):
        hit = draw(st.booleans())  # a response-cache hit: no cost, its saving recorded
        at = draw(st.datetimes(min_value=LO.replace(tzinfo=None), max_value=HI.replace(tzinfo=None)))
        out.append(
            SpendEvent(
                event_id=f"e{i}",
                occurred_at=at.replace(tzinfo=UTC),
                cost_nanos=0 if hit else draw(st.integers(min_value=0, max_value=10**12)),
                cache_hit=hit,
                saved_nanos=draw(st.integers(min_value=0, max_value=10**12)) if hit else 0,
                usage=Usage(
                    input_tokens=draw(st.integers(min_value=0, max_value=10**9)),
                    output_tokens=draw(st.integers(min_value=0, max_value=10**6)),
                ),
                status=draw(st.sampled_from(list(EventStatus))),
                api_key=draw(st.sampled_from(["k1", "k2", None])),
                user_id=draw(st.sampled_from(["u1", None])),
                team_id=draw(st.sampled_from(["t1", "t2", "t3", None])),
                organization_id=draw(st.sampled_from(["o1", None])),
                end_user=draw(st.sampled_from(["c1", "c2", None])),
                tags=tuple(draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3))),
                model=draw(st.sampled_from(["m1", "m2"])),
                provider=draw(st.sampled_from(["openai", "anthropic"])),
                deployment_id=draw(st.sampled_from(["d1", None])),
                endpoint=draw(st.sampled_from(["/v1/chat/completions", "/v1/embeddings", None])),
                batch_id=draw(st.sampled_from([None, None, "batch_1"])),
            )
        )
    return out


def expected(
    evts: list[SpendEvent],
    group_by: list[str],
    granularity: str | None,
    tz: str,
    lo: datetime,
    hi: datetime,
    *,
    cache: bool = False,
):
    """(period start, group) → [cost, requests, input, output (, cache hits, saved nanos)]."""
    acc: dict[Any, list[int]] = defaultdict(lambda: [0] * (6 if cache else 4))
    for e in evts:
        if not lo <= e.occurred_at < hi:
            continue
        period = period_for(granularity, e.occurred_at, tz).start if granularity else None
        combos: list[tuple[str | None, ...]] = [()]
        for dim in group_by:
            if dim == "tag":
                values: list[str | None] = list(e.tags) or [None]
            elif dim in ATTR:
                values = [getattr(e, ATTR[dim])]
            elif dim == "endpoint":
                values = [e.endpoint]
            elif dim == "mode":
                values = ["realtime" if e.batch_id is None else "batch"]
            else:
                values = [getattr(e, COLUMN[dim])]
            combos = [(*c, v) for c in combos for v in values]
        for combo in combos:
            a = acc[(period, combo)]
            a[0] += e.cost_nanos
            a[1] += 1
            a[2] += e.usage.input_tokens
            a[3] += e.usage.output_tokens
            if cache:
                a[4] += e.cache_hit
                a[5] += e.saved_nanos
    return dict(acc)


def observed(report: Report, *, cache: bool = False) -> dict[Any, list[int]]:
    """The report's rows in :func:`expected`'s shape."""
    return {
        (r.period.start if r.period else None, tuple(r.group.values())): [
            r.totals.cost_nanos,
            r.totals.requests,
            r.totals.input_tokens,
            r.totals.output_tokens,
            *((r.totals.cache_hits, r.totals.saved_nanos) if cache else ()),
        ]
        for r in report.rows
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evts=events(),
    scope=st.sampled_from([None, "key", "user", "team", "org", "customer", "tag", "endpoint", "mode"]),
    columns=st.lists(st.sampled_from(["model", "provider", "deployment"]), unique=True, max_size=2),
    granularity=st.sampled_from([None, "hour", "day", "week", "month"]),
    tz=st.sampled_from(ZONES),
    start=st.datetimes(min_value=datetime(2026, 3, 15), max_value=datetime(2026, 4, 5)),
    length=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=30)),
)
def test_report_equals_sum_of_events(
    database_url: str,
    evts: list[SpendEvent],
    scope: str | None,
    columns: list[str],
    granularity: str | None,
    tz: str,
    start: datetime,
    length: timedelta,
) -> None:
    if scope:  # deployments are rolled up globally only (not with a scope or a breakdown)
        columns = [c for c in columns if c != "deployment"]
    group_by = ([scope] if scope else []) + columns

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            await clear_database(engine)
            if evts:
                await LedgerRepository(engine).write_batch(evts)
            report = await spend_report(
                engine,
                start=start.replace(tzinfo=UTC),
                end=start.replace(tzinfo=UTC) + length,
                group_by=group_by,
                granularity=granularity,
                tz=tz,
            )
        finally:
            await engine.dispose()
        want = expected(evts, group_by, granularity, tz, report.start, report.end, cache=True)
        assert observed(report, cache=True) == want
        assert report.totals.cost_nanos == sum(r.totals.cost_nanos for r in report.rows)
        assert report.totals.spend == sum(
            (r.totals.spend for r in report.rows), start=report.totals.spend * 0
        )
        assert report.start <= start.replace(tzinfo=UTC) and report.end >= start.replace(tzinfo=UTC) + length

    asyncio.run(run())

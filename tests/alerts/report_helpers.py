"""Helpers of the spend-report tests: a ledger of known events around Asia/Kolkata's
midnights, the admin API over ASGI (to read ``/global/spend/report``), report specs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.admin import build_admin_app
from spendgate.core.periods import parse_window
from spendgate.core.usage import Usage
from spendgate.jobs.report_content import ReportSpec
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.models import AlertOutboxRow, AlertRow

MASTER = "sk-master-report-tests"
KOLKATA = "Asia/Kolkata"
# Kolkata's 2026-03-10 is [2026-03-09 18:30, 2026-03-10 18:30) UTC.
DAY_START = datetime(2026, 3, 9, 18, 30, tzinfo=UTC)
DAY = timedelta(days=1)
USD = 10**9


def nanos(usd: Any) -> int:
    exact = Decimal(str(usd)) * USD
    assert exact == exact.to_integral_value(), usd
    return int(exact)


def spec(name: str = "daily-kolkata", **kw: Any) -> ReportSpec:
    values: dict[str, Any] = {
        "name": name,
        "frequency": "daily",
        "window": parse_window("1d"),
        "timezone": KOLKATA,
        "team_ids": None,
        "breakdowns": ("model", "key", "team"),
        "top_n": 5,
        "lookback": 1,
        "grace": timedelta(seconds=300),
        "channels": ("slack", "webhook", "email"),
    }
    values.update(kw)
    return ReportSpec(**values)


@dataclass
class Ledger:
    events: list[SpendEvent]
    keys: dict[str, str]
    """alias → key_id."""

    def spent(
        self, start: datetime, end: datetime, where: Callable[[SpendEvent], bool] = lambda e: True
    ) -> int:
        return sum(e.cost_nanos for e in self.events if start <= e.occurred_at < end and where(e))

    def count(
        self, start: datetime, end: datetime, where: Callable[[SpendEvent], bool] = lambda e: True
    ) -> int:
        return sum(1 for e in self.events if start <= e.occurred_at < end and where(e))

    def by(self, start: datetime, end: datetime, attr: str) -> dict[str | None, int]:
        out: dict[str | None, int] = {}
        for e in self.events:
            if start <= e.occurred_at < end:
                out[getattr(e, attr)] = out.get(getattr(e, attr), 0) + e.cost_nanos
        return out


class Admin:
    """The management API in process (master key)."""

    def __init__(self, engine: AsyncEngine) -> None:
        app = build_admin_app(engine, MASTER)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin")

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = await self.client.request(
            method, path, json=body, params=params, headers={"authorization": f"Bearer {MASTER}"}
        )
        assert response.status_code == 200, (response.status_code, response.text)
        return json.loads(response.text, parse_float=Decimal)

    async def aclose(self) -> None:
        await self.client.aclose()


def _event(
    n: int, at: datetime, key: str | None, team: str | None, model: str, cost: int, **kw: Any
) -> SpendEvent:
    return SpendEvent(
        event_id=f"rep-{n:03d}",
        occurred_at=at,
        cost_nanos=cost,
        usage=Usage(input_tokens=100 + n, output_tokens=10 + n),
        cost_items={"input": cost},
        api_key=key,
        team_id=team,
        model=model,
        provider="anthropic" if model.startswith("claude") else "openai",
        catalogue_version="cat-1",
        endpoint="/v1/chat/completions",
        **kw,
    )


async def build_ledger(engine: AsyncEngine, admin: Admin) -> Ledger:
    """Teams t1 (Alpha: $10 a month, $2 a day) and t2 (no budget), keys ka (t1), kb (t2),
    and events on both sides of Kolkata's midnights of 2026-03-10 and 03-11."""
    await admin.call(
        "POST",
        "/team/new",
        {
            "team_id": "t1",
            "team_alias": "Alpha",
            "max_budget": 10,
            "budget_duration": "1mo",
            "budget_limits": [{"budget_duration": "1d", "max_budget": 2}],
        },
    )
    await admin.call("POST", "/team/new", {"team_id": "t2"})
    ka = (await admin.call("POST", "/key/generate", {"team_id": "t1", "key_alias": "ka"}))["key_id"]
    kb = (await admin.call("POST", "/key/generate", {"team_id": "t2", "key_alias": "kb"}))["key_id"]
    m = timedelta(minutes=1)
    spec_rows: list[tuple[datetime, str | None, str | None, str, int, dict[str, Any]]] = [
        (DAY_START - 2 * DAY, ka, "t1", "gpt-4o", 900_000_001, {}),  # 03-08: the month, not the days
        (DAY_START - m, ka, "t1", "gpt-4o", 400_000_003, {}),  # 03-09 23:59 Kolkata: the previous day
        (DAY_START - DAY + m, kb, "t2", "gpt-4o-mini", 100_000_007, {}),
        (DAY_START, ka, "t1", "gpt-4o-mini", 250_000_011, {}),  # 03-10 00:00 Kolkata
        (DAY_START + 6 * 60 * m, kb, "t2", "claude-3-5-haiku", 333_333_333, {}),
        (DAY_START + 7 * 60 * m, ka, "t1", "gpt-4o", 1_234_567_891, {}),
        (DAY_START + 8 * 60 * m, ka, "t1", "gpt-4o", 17, {"status": EventStatus.ERROR}),
        (DAY_START + 9 * 60 * m, None, None, "gpt-4o-mini", 55_555_555, {}),  # no key, no team
        (DAY_START + DAY - timedelta(seconds=1), kb, "t2", "gpt-4o", 700_000_019, {}),  # 23:59:59
        (DAY_START + DAY, ka, "t1", "gpt-4o", 600_000_023, {}),  # 03-11 00:00: the next day
        (DAY_START + DAY + 60 * m, kb, "t2", "gpt-4o-mini", 44_000_029, {}),
    ]
    events = [
        _event(n, at, key, team, model, cost, **kw)
        for n, (at, key, team, model, cost, kw) in enumerate(spec_rows)
    ]
    await LedgerRepository(engine).write_batch(events)
    return Ledger(events, {"ka": ka, "kb": kb})


async def global_report_day(admin: Admin, day: str) -> dict[str, Any]:
    """``/global/spend/report`` for one Kolkata day: team name → (nanos, {model: (nanos, tokens)})."""
    rows = await admin.call(
        "GET", "/global/spend/report", params={"start_date": day, "end_date": day, "timezone": KOLKATA}
    )
    assert len(rows) <= 1
    out: dict[str, Any] = {}
    for row in rows:
        for team in row["teams"]:
            models = {m["model"]: (nanos(m["spend"]), m["total_tokens"]) for m in team["metadata"]}
            out[team["team_name"]] = (nanos(team["total_spend"]), models)
    return out


async def alert_rows(engine: AsyncEngine) -> list[tuple[AlertRow, list[AlertOutboxRow]]]:
    async with AsyncSession(engine) as session:
        alerts = list(
            (await session.scalars(select(AlertRow).order_by(AlertRow.period_start, AlertRow.id))).all()
        )
        out = []
        for alert in alerts:
            outbox = (
                await session.scalars(select(AlertOutboxRow).where(AlertOutboxRow.alert_id == alert.id))
            ).all()
            out.append((alert, sorted(outbox, key=lambda o: o.channel)))
        return out


def local_days(rows: Iterable[AlertRow]) -> list[str]:
    return [r.period_start.astimezone(ZoneInfo(KOLKATA)).date().isoformat() for r in rows]

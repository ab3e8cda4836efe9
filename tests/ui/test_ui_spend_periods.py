"""The Spend page per week and per month (issue #18): the export's periods (weeks from
Monday, months from the 1st, in the chosen zone) on the chart's axis and in its table, the
total exact; in Debian's Chromium against a real gateway."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from playwright.sync_api import Page, expect
from ui_helpers import admin, sign_in, usd

from spendgate.ui.pages.spend import _axis

BERLIN = ZoneInfo("Europe/Berlin")


def _local(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), BERLIN).timestamp())


@pytest.mark.parametrize(
    ("granularity", "starts"),
    [
        # Across the spring DST change (29 March): each period starts at local midnight.
        ("week", ["2026-03-23", "2026-03-30", "2026-04-06"]),
        ("month", ["2026-03-01", "2026-04-01"]),
        ("day", ["2026-03-28", "2026-03-29", "2026-03-30"]),
    ],
)
def test_the_axis_has_every_period_start(granularity: str, starts: list[str]) -> None:
    first, last = (
        (date(2026, 3, 25), date(2026, 4, 10))
        if granularity != "day"
        else (
            date(2026, 3, 28),
            date(2026, 3, 30),
        )
    )
    assert _axis(first, last, granularity, "Europe/Berlin") == [_local(d) for d in starts]


def test_spend_per_week_and_month(page: Page, gateway: GatewayServer, ledger: Ledger) -> None:
    with admin(gateway) as client:
        raw_key = client.post("/key/generate", json={"key_alias": "periods"}).json()["key"]
    costs = []
    with openai.OpenAI(base_url=gateway.url, api_key=raw_key, max_retries=0, timeout=20) as sdk:
        for i in range(2):
            raw = sdk.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"week {i}"}], max_tokens=8
            )
            costs.append(Decimal(raw.headers["x-spendgate-response-cost"]))
    spent = sum(costs, Decimal(0))
    ledger.wait(2)

    today = datetime.now(BERLIN).date()
    sign_in(page, gateway.base_url, MASTER_KEY)
    for granularity, first in (
        ("week", today - timedelta(days=today.weekday())),
        ("month", today.replace(day=1)),
    ):
        page.goto(
            f"{gateway.base_url}/ui/spend?group_by=key&granularity={granularity}"
            f"&start_date={today - timedelta(days=40)}&end_date={today}&timezone=Europe/Berlin"
        )
        expect(page.locator("select[name=granularity]")).to_have_value(granularity)
        assert usd(page, "#spend-total .money") == spent
        expect(page.locator("#spend-chart[data-drawn=true] canvas")).to_be_visible()
        chart = json.loads(page.locator("#spend-data").inner_text())
        at = chart["x"].index(_local(first.isoformat()))
        assert Decimal(chart["stacked"][-1][at]) == spent  # all of it in this week / month
        assert sum(Decimal(v) for v in chart["stacked"][-1]) == spent

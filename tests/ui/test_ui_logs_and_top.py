"""The Logs page's cursor pages and the Spend table's top groups (issue #18), in Debian's
Chromium, over a ledger of 120 events on 55 keys written straight to the gateway's
database: "Older" walks every event once, newest first, and "Newest" goes back; the Spend
page grouped by key lists the 50 costliest keys and one row for the 5 others, and every
figure is exact."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from playwright.sync_api import Page, expect
from ui_helpers import sign_in, usd

from spendgate.core.money import from_nano
from spendgate.core.usage import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine


def _write(db: Path, events: list[SpendEvent]) -> None:
    async def run() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{db}")
        try:
            await LedgerRepository(engine).write_batch(events)
        finally:
            await engine.dispose()

    # Playwright's sync API runs an event loop in this thread: write from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def test_logs_pages_by_cursor_and_spend_keeps_the_top_keys(
    page: Page, gateway: GatewayServer, ledger: Ledger, ui_dir: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        SpendEvent(
            event_id=f"ui-{i:03d}",
            occurred_at=now - timedelta(minutes=3 * i + 1, seconds=i % 2),
            cost_nanos=1_000_000 * (1 + i % 55) + 7,
            usage=Usage(input_tokens=10, output_tokens=3),
            api_key=f"kid-{i % 55:02d}",
            model="gpt-4o",
            provider="openai",
            endpoint="/v1/chat/completions",
        )
        for i in range(120)
    ]
    _write(ui_dir / "spendgate.db", events)
    ledger.wait(120)
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)

    page.goto(f"{base}/ui/logs")
    seen: list[str] = []
    for expected_rows in (50, 50, 20):
        rows = page.locator("#logs-table tbody tr")
        expect(rows).to_have_count(expected_rows)
        seen += [rows.nth(i).get_attribute("data-request") or "" for i in range(expected_rows)]
        older = page.get_by_role("link", name="Older")
        if expected_rows < 50:
            expect(older).to_have_count(0)
        else:
            older.click()
            expect(page.get_by_role("link", name="Newest")).to_be_visible()
    newest_first = sorted(events, key=lambda e: (e.occurred_at, e.event_id), reverse=True)
    assert seen == [e.event_id for e in newest_first]
    page.get_by_role("link", name="Newest").click()
    expect(page.locator("#logs-table tbody tr").first).to_have_attribute("data-request", "ui-000")

    page.goto(f"{base}/ui/spend?group_by=key")
    table = page.locator("#spend-table tbody tr")
    expect(table).to_have_count(51)
    per_key: dict[str, int] = {}
    for e in events:
        per_key[e.api_key or ""] = per_key.get(e.api_key or "", 0) + e.cost_nanos
    ranked = sorted(per_key, key=lambda k: (-per_key[k], k))
    shown = [table.nth(i).get_attribute("data-group") for i in range(50)]
    assert shown == ranked[:50]
    last = table.nth(50)
    expect(last.locator("th")).to_contain_text("5 others")
    rest = sum(per_key[k] for k in ranked[50:])
    assert Decimal(last.locator(".money").first.get_attribute("data-usd") or "nan") == from_nano(rest)
    assert usd(page, "#spend-total .money") == from_nano(sum(per_key.values()))

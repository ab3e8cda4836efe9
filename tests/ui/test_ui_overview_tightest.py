"""The Overview's "Budgets nearest their limit" in Debian's Chromium (issue #18): the fullest
windows among **every** key the caller may see, not among the first page of keys. Thirty
keys with budgets; the one created last is the fullest after a call through the official
openai SDK, and the Overview shows it first with the exact share of its budget that the
call's ``x-spendgate-response-cost`` used."""

from __future__ import annotations

from decimal import Decimal

import openai
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from playwright.sync_api import Page, expect
from ui_helpers import admin_post, sign_in

KEYS = 30


def _call(gateway: GatewayServer, key: str) -> Decimal:
    with openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0, timeout=20) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "how full?"}], max_tokens=8
        )
    return Decimal(raw.headers["x-spendgate-response-cost"])


def test_the_fullest_key_leads_even_past_the_first_page(
    page: Page, gateway: GatewayServer, ledger: Ledger
) -> None:
    keys = [
        admin_post(
            gateway, "/key/generate", {"key_alias": f"ot-{i:02d}", "max_budget": 1, "budget_duration": "1mo"}
        )
        for i in range(KEYS)
    ]
    first, last = keys[0], keys[-1]
    spent_first = _call(gateway, first["key"])
    spent_last = _call(gateway, last["key"])
    assert spent_first > 0 and spent_last > 0
    ledger.wait(2)
    # The last key's budget: four times what it spent (25.0 % used); the first key's stays $1.
    admin_post(gateway, "/key/update", {"key": last["key"], "max_budget": str(spent_last * 4)})

    sign_in(page, gateway.base_url, MASTER_KEY)
    page.goto(f"{gateway.base_url}/ui/overview")
    rows = page.get_by_role("region", name="Budgets nearest their limit").locator("tbody tr")
    expect(rows).to_have_count(10)
    lead = rows.first
    assert lead.get_attribute("data-entity") == last["token"]
    expect(lead.get_by_role("link")).to_have_text("ot-29")
    assert Decimal(lead.locator(".bar").get_attribute("data-percent") or "nan") == Decimal("25.0")
    second = rows.nth(1)
    assert second.get_attribute("data-entity") == first["token"]
    expected = (spent_first * 100).quantize(Decimal("0.1"))
    assert Decimal(second.locator(".bar").get_attribute("data-percent") or "nan") == expected


def test_the_overview_does_not_wait_for_the_ranking(page: Page, gateway: GatewayServer) -> None:
    """The page comes without the ranking (it is loaded after it, by htmx); the fragment
    alone is the table, or the empty state, for the signed-in key."""
    sign_in(page, gateway.base_url, MASTER_KEY)
    html = page.request.get(f"{gateway.base_url}/ui/overview").text()
    assert (
        'hx-get="/ui/overview/tightest"' in html
        and "<table" not in html.split('id="tightest"')[1].split("</section>")[0]
    )
    fragment = page.request.get(f"{gateway.base_url}/ui/overview/tightest")
    assert fragment.ok and "<html" not in fragment.text()
    assert (
        'aria-label="Budgets nearest their limit"' in fragment.text()
        or "No key you can see has a budget" in fragment.text()
    )

"""The dashboard in Debian's Chromium, against a real gateway (issue #18, "Must show").

Signs in, creates a key with a budget in the UI, calls the gateway with it through the
official openai SDK, and checks the overview, the spend chart and table and the key's
budget bar show exactly the sum of the ``x-spendgate-response-cost`` headers; a non-admin
key gets a 403 page (not data) for another team; a POST without the CSRF token is refused.
Each page is saved to docs/screenshots/ (linked from docs/dashboard.md).
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import openai
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from playwright.sync_api import Browser, Page, expect
from ui_helpers import admin, shot, sign_in, usd

BUDGET = Decimal("0.01")


def test_sign_in_create_key_spend_and_budget_bar(page: Page, gateway: GatewayServer, ledger: Ledger) -> None:
    base = gateway.base_url
    page.goto(f"{base}/")
    page.get_by_role("link", name="Open the dashboard").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    shot(page, "login")
    sign_in(page, base, MASTER_KEY)

    # Create a key with a budget, in the UI; the raw key is shown once.
    page.goto(f"{base}/ui/keys")
    page.get_by_label("Alias", exact=True).fill("ui-demo")
    page.get_by_label("Budget (USD)", exact=True).fill(str(BUDGET))
    page.get_by_label("Soft budget (USD)").fill("0.008")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Key created")).to_be_visible()
    shot(page, "key-created")
    raw_key = page.locator("#raw-key").inner_text().strip()
    assert raw_key.startswith("sk-")

    # Calls through the official SDK with that key; the gateway says what each cost.
    costs: list[Decimal] = []
    with openai.OpenAI(base_url=gateway.url, api_key=raw_key, max_retries=0, timeout=20) as client:
        for i in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"hello {i} " * (i + 1)}],
                max_tokens=16,
            )
            costs.append(Decimal(raw.headers["x-spendgate-response-cost"]))
    spent = sum(costs, Decimal(0))
    assert spent > 0
    ledger.wait(3)

    page.goto(f"{base}/ui/overview")
    today = page.locator('[data-period="Today"] .money').first
    assert Decimal(today.get_attribute("data-usd") or "nan") == spent
    assert usd(page, '[data-period="This month"] .money') == spent
    shot(page, "overview")

    page.goto(f"{base}/ui/spend?group_by=key")
    assert usd(page, "#spend-total .money") == spent
    row = page.locator("#spend-table tbody tr")
    expect(row).to_have_count(1)
    assert usd(page, "#spend-table tbody tr .money") == spent
    expect(page.locator("#spend-chart[data-drawn=true] canvas")).to_be_visible()
    chart = json.loads(page.locator("#spend-data").inner_text())
    assert sum(Decimal(v) for v in chart["stacked"][-1]) == spent  # the top band is the total
    shot(page, "spend")

    # Switching the grouping (htmx swaps the page) redraws the chart by model.
    page.get_by_label("Group by").select_option("model")
    expect(page.locator("#spend-table tbody tr[data-group=gpt-4o]")).to_be_visible()
    expect(page.locator("#spend-chart[data-drawn=true] canvas")).to_be_visible()
    assert "group_by=model" in page.url

    expected = (spent * 100 / BUDGET).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    page.goto(f"{base}/ui/keys")
    bar = page.locator('tr[data-alias="ui-demo"] .bar')
    assert Decimal(bar.get_attribute("data-percent") or "nan") == expected
    shot(page, "keys")
    page.goto(f"{base}/ui/budgets")
    assert Decimal(page.locator(".bar").first.get_attribute("data-percent") or "nan") == expected
    shot(page, "budgets")

    page.goto(f"{base}/ui/logs")
    expect(page.locator("#logs-table tbody tr")).to_have_count(3)
    shot(page, "logs")
    for name in ("teams", "users", "customers", "alerts"):
        page.goto(f"{base}/ui/{name}")
        expect(page.locator("main h1")).to_be_visible()
        shot(page, name)

    # The CSV download through the dashboard holds the same total, to the nano-USD.
    spend_page = page.goto(f"{base}/ui/spend")
    assert spend_page is not None and spend_page.ok
    with page.expect_download() as download:
        page.get_by_role("link", name="this table as CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    nanos_col = lines[0].split(",").index("cost_nanos")
    assert sum(int(line.split(",")[nanos_col]) for line in lines[1:]) == int(spent * 10**9)


def test_phone_width_overview(browser: Browser, gateway: GatewayServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, gateway.base_url, MASTER_KEY)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces sideways scrolling
        shot(page, "overview-phone")
    finally:
        context.close()


def test_non_admin_sees_a_403_page_for_another_team(page: Page, gateway: GatewayServer) -> None:
    with admin(gateway) as client:
        assert (
            client.post("/team/new", json={"team_id": "red", "team_alias": "Red secret team"}).status_code
            == 200
        )
        assert (
            client.post("/team/new", json={"team_id": "blue", "team_alias": "Blue team"}).status_code == 200
        )
        user = client.post(
            "/user/new", json={"user_id": "ann", "user_role": "internal_user", "teams": ["blue"]}
        )
        assert user.status_code == 200, user.text
        ann_key = user.json()["key"]
    sign_in(page, gateway.base_url, ann_key)
    response = page.goto(f"{gateway.base_url}/ui/teams/red")
    assert response is not None and response.status == 403
    expect(page.locator(".error-page[data-status='403']")).to_be_visible()
    assert "Red secret team" not in page.content()
    shot(page, "forbidden")
    response = page.goto(f"{gateway.base_url}/ui/teams/blue")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="Team Blue team")).to_be_visible()


def test_posts_without_the_csrf_token_are_refused(page: Page, gateway: GatewayServer) -> None:
    sign_in(page, gateway.base_url, MASTER_KEY)
    url = f"{gateway.base_url}/ui/keys/create"
    missing = page.request.post(url, form={"key_alias": "csrf-missing"})
    wrong = page.request.post(url, form={"key_alias": "csrf-wrong", "csrf_token": "not-the-token"})
    assert (missing.status, wrong.status) == (403, 403)
    assert "security token" in missing.text()
    page.goto(f"{gateway.base_url}/ui/keys")
    token = page.locator("#create-key input[name=csrf_token]").get_attribute("value") or ""
    right = page.request.post(url, form={"key_alias": "csrf-right", "csrf_token": token})
    assert right.status == 200
    with admin(gateway) as client:
        aliases = {
            k["key_alias"] for k in client.get("/key/list?return_full_object=true&size=100").json()["keys"]
        }
    assert "csrf-right" in aliases
    assert not {"csrf-missing", "csrf-wrong"} & aliases

"""The Budgets page's scopes (keys, teams, users, customers, organizations) in Debian's
Chromium (issue #18): one call through the official openai SDK shows, on every scope's
tab, exactly the spend of its ``x-spendgate-response-cost`` against that scope's budget;
the soft-budget marker, the reset time and a key's temporary increase with its expiry;
pages of 25; and what a non-admin sees follows the API (a 403 is the 403 page)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import openai
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from playwright.sync_api import Page, expect
from ui_helpers import admin, admin_post, shot, sign_in


def _tab(page: Page, title: str) -> None:
    page.locator("nav.tabs").get_by_role("link", name=title, exact=True).click()
    expect(page.locator("nav.tabs [aria-current=page]")).to_have_text(title)


def _percent(spent: Decimal, limit: Decimal) -> str:
    return str((spent * 100 / limit).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN))


def test_every_scope_shows_its_windows_with_the_exact_spend(
    page: Page, gateway: GatewayServer, ledger: Ledger
) -> None:
    admin_post(
        gateway,
        "/organization/new",
        {"organization_id": "bs-org", "organization_alias": "Budget Org", "max_budget": "0.005"},
    )
    admin_post(
        gateway,
        "/team/new",
        {
            "team_id": "bs-team",
            "team_alias": "Budget Team",
            "organization_id": "bs-org",
            "max_budget": "0.0003",
            "soft_budget": "0.00015",
            "budget_duration": "1mo",
        },
    )
    admin_post(gateway, "/user/new", {"user_id": "bs-user", "max_budget": "0.002", "auto_create_key": False})
    admin_post(
        gateway, "/customer/new", {"user_id": "bs-cust", "max_budget": "0.004", "budget_duration": "7d"}
    )
    key = admin_post(
        gateway,
        "/key/generate",
        {
            "key_alias": "bs-key",
            "team_id": "bs-team",
            "user_id": "bs-user",
            "end_user_id": "bs-cust",
            "organization_id": "bs-org",
            "max_budget": "0.001",
            "temp_budget_increase": "0.002",
            "temp_budget_expiry": "2099-01-02T03:04:00+00:00",
        },
    )
    with openai.OpenAI(base_url=gateway.url, api_key=key["key"], max_retries=0, timeout=20) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "budgets"}], max_tokens=8
        )
    cost = Decimal(raw.headers["x-spendgate-response-cost"])
    assert Decimal("0.00003") < cost < Decimal("0.0003")  # so each bar shows a share above 1 %
    ledger.wait(1)

    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/budgets")
    expect(page.locator("nav.tabs [aria-current=page]")).to_have_text("Keys")
    row = page.locator(f'tr[data-entity="{key["token"]}"]')
    # The bar measures what is enforced: the budget plus the unexpired temporary increase.
    expect(row.locator(".bar")).to_have_attribute("data-percent", _percent(cost, Decimal("0.003")))
    expect(row.locator(".temp")).to_have_attribute("data-active", "true")
    expect(row.locator(".temp")).to_contain_text("until 2099-01-02 03:04")
    expect(row.locator(".temp .money")).to_have_attribute("data-usd", "0.002")

    for title, ident, limit in (
        ("Teams", "bs-team", Decimal("0.0003")),
        ("Users", "bs-user", Decimal("0.002")),
        ("Customers", "bs-cust", Decimal("0.004")),
        ("Organizations", "bs-org", Decimal("0.005")),
    ):
        _tab(page, title)
        row = page.locator(f'tr[data-entity="{ident}"]')
        expect(row).to_have_count(1)
        expect(row.locator(".bar")).to_have_attribute("data-percent", _percent(cost, limit))
        expect(row.locator(".barnote .money").first).to_have_attribute("data-usd", str(cost))
        if title == "Teams":
            expect(row.locator(".bar .soft")).to_have_attribute("style", "left: 50.0%")
            expect(row.locator(".barnote")).to_contain_text("resets ")
            expect(row.get_by_role("link", name="Budget Team")).to_have_attribute("href", "/ui/teams/bs-team")
            shot(page, "budgets-teams")
        if title == "Customers":
            expect(row).to_have_attribute("data-window", "7d")


def test_scopes_page_by_25(page: Page, gateway: GatewayServer) -> None:
    with admin(gateway) as client:
        for i in range(30):
            made = client.post("/team/new", json={"team_id": f"pg-team-{i:02}", "max_budget": "1"})
            assert made.status_code == 200, made.text
            made = client.post(
                "/user/new", json={"user_id": f"pg-user-{i:02}", "max_budget": "1", "auto_create_key": False}
            )
            assert made.status_code == 200, made.text
        assert client.post("/team/new", json={"team_id": "pg-team-free"}).status_code == 200
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    for scope, prefix in (("teams", "pg-team-"), ("users", "pg-user-")):
        seen: list[str] = []
        page.goto(f"{base}/ui/budgets?scope={scope}")
        first = page.locator("tr[data-entity]")
        assert first.count() <= 25
        seen += [e for e in first.evaluate_all("rs => rs.map(r => r.dataset.entity)") if e.startswith(prefix)]
        page.get_by_role("link", name=f"Next {scope}").click()
        expect(page.get_by_role("link", name=f"Previous {scope}")).to_be_visible()
        second = page.locator("tr[data-entity]").evaluate_all("rs => rs.map(r => r.dataset.entity)")
        seen += [e for e in second if e.startswith(prefix)]
        assert sorted(seen) == [f"{prefix}{i:02}" for i in range(30)]  # each once, over two pages
    expect(page.locator("#without-budget")).to_have_count(0)  # users: all have budgets
    page.goto(f"{base}/ui/budgets?scope=teams&page=2")
    expect(page.locator("#without-budget")).to_contain_text("1 more on this page has no budget")


def test_a_member_sees_their_own_and_customers_are_a_403(page: Page, gateway: GatewayServer) -> None:
    admin_post(gateway, "/team/new", {"team_id": "own-team", "max_budget": "1"})
    admin_post(gateway, "/team/new", {"team_id": "other-team", "max_budget": "1"})
    member = admin_post(
        gateway,
        "/user/new",
        {"user_id": "own-user", "user_role": "internal_user", "max_budget": "1", "teams": ["own-team"]},
    )
    admin_post(gateway, "/user/new", {"user_id": "other-user", "max_budget": "1", "auto_create_key": False})
    admin_post(gateway, "/customer/new", {"user_id": "secret-cust", "max_budget": "1"})
    base = gateway.base_url
    sign_in(page, base, member["key"])
    page.goto(f"{base}/ui/budgets?scope=teams")
    expect(page.locator('tr[data-entity="own-team"]')).to_have_count(1)
    expect(page.locator('tr[data-entity="other-team"]')).to_have_count(0)
    page.goto(f"{base}/ui/budgets?scope=users")
    expect(page.locator('tr[data-entity="own-user"]')).to_have_count(1)
    expect(page.locator('tr[data-entity="other-user"]')).to_have_count(0)
    response = page.goto(f"{base}/ui/budgets?scope=customers")
    assert response is not None and response.status == 403
    expect(page.locator(".error-page[data-status='403']")).to_be_visible()
    assert "secret-cust" not in page.content()

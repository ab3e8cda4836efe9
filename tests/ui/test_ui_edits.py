"""Creating teams, users and customers and editing budgets and limits of keys, teams, users
and customers from their pages, in Debian's Chromium (issue #18). Every change is checked
through the management API itself; a form without the CSRF token and a change the key's
role does not allow change nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from gateway_helpers import MASTER_KEY, GatewayServer
from playwright.sync_api import Page, expect
from ui_helpers import admin, shot, sign_in


def _info(gateway: GatewayServer, path: str, **params: str) -> dict[str, Any]:
    with admin(gateway) as client:
        answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = json.loads(answer.content, parse_float=Decimal)
    return body


def _open(page: Page, summary: str) -> None:
    """Unfold the creation form (it is already open when the list is empty)."""
    details = page.locator("details", has_text=summary)
    if details.get_attribute("open") is None:
        details.locator("summary").click()


def _save(page: Page, **fields: str) -> None:
    form = page.locator("#edit-limits")
    for name, value in fields.items():
        target = form.locator(f'[name="{name}"]')
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    form.get_by_role("button", name="Save budget and limits").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")


def test_create_and_edit_a_team(page: Page, gateway: GatewayServer) -> None:
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/teams")
    _open(page, "Create a team")
    form = page.locator("#create-team")
    form.get_by_label("Team id").fill("ops")
    form.get_by_label("Name", exact=True).fill("Operations")
    form.get_by_label("Budget (USD)", exact=True).fill("5")
    form.get_by_label("Resets every").select_option("1mo")
    form.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Team Operations")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Created.")
    team = _info(gateway, "/team/info", team_id="ops")["team_info"]
    assert (team["max_budget"], team["budget_duration"], team["rpm_limit"]) == (5, "1mo", None)

    _save(page, max_budget="7.500000001", rpm_limit="60", soft_budget="6")
    team = _info(gateway, "/team/info", team_id="ops")["team_info"]
    assert team["max_budget"] == Decimal("7.500000001")  # exact, to the nano-USD
    assert (team["soft_budget"], team["rpm_limit"], team["budget_duration"]) == (6, 60, "1mo")
    bar = page.locator('tr[data-entity="ops"] .bar').first
    expect(bar).to_have_attribute("data-percent", "0.0")
    shot(page, "team-edit")

    # Emptying a field removes the limit; the others stay as they were.
    _save(page, max_budget="", budget_duration="")
    team = _info(gateway, "/team/info", team_id="ops")["team_info"]
    assert (team["max_budget"], team["budget_duration"], team["rpm_limit"]) == (None, None, 60)

    # A bad number is a 422 page, and nothing changes.
    page.locator('#edit-limits [name="tpm_limit"]').evaluate("e => e.removeAttribute('pattern')")
    page.locator('#edit-limits [name="tpm_limit"]').fill("lots")
    page.locator("#edit-limits button").click()
    expect(page.locator(".error-page[data-status='422']")).to_contain_text("tpm_limit")
    assert _info(gateway, "/team/info", team_id="ops")["team_info"]["tpm_limit"] is None


def test_create_and_edit_a_user_and_a_customer(page: Page, gateway: GatewayServer) -> None:
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/users")
    _open(page, "Create a user")
    form = page.locator("#create-user")
    form.get_by_label("User id").fill("uma")
    form.get_by_label("Role").select_option("internal_user_viewer")
    form.get_by_label("Budget (USD)", exact=True).fill("3")
    form.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("Created.")
    user = _info(gateway, "/user/info", user_id="uma")
    assert (user["user_info"]["max_budget"], user["user_info"]["user_role"]) == (3, "internal_user_viewer")
    assert user["keys"] == []  # no key made behind the admin's back
    _save(page, tpm_limit="100000", max_parallel_requests="4")
    info = _info(gateway, "/user/info", user_id="uma")["user_info"]
    assert (info["tpm_limit"], info["max_parallel_requests"], info["max_budget"]) == (100000, 4, 3)

    page.goto(f"{base}/ui/customers")
    _open(page, "Create a customer")
    form = page.locator("#create-customer")
    form.get_by_label("Customer id").fill("acme")
    form.get_by_label("Name", exact=True).fill("Acme Corp")
    form.get_by_label("Budget (USD)", exact=True).fill("2")
    form.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("status")).to_have_text("Created.")
    _save(page, max_budget="2.25", budget_duration="7d")
    customer = _info(gateway, "/customer/info", end_user_id="acme")
    assert (customer["max_budget"], customer["budget_duration"]) == (Decimal("2.25"), "7d")


def test_edit_a_key_from_its_page(page: Page, gateway: GatewayServer) -> None:
    with admin(gateway) as client:
        created = client.post("/key/generate", json={"key_alias": "edit-me", "max_budget": 1})
        assert created.status_code == 200, created.text
        token = created.json()["token"]
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/keys?key_alias=edit-me")
    page.get_by_role("link", name="edit-me").click()
    expect(page.get_by_role("heading", name="Key edit-me")).to_be_visible()
    _save(page, max_budget="2", budget_duration="24h", rpm_limit="5")
    info = _info(gateway, "/key/info", key=token)["info"]
    assert (info["max_budget"], info["budget_duration"], info["rpm_limit"]) == (2, "24h", 5)
    expect(page.locator(".bar").first).to_have_attribute("data-percent", "0.0")
    shot(page, "key-edit")

    # Saving the form unchanged sends nothing.
    page.locator("#edit-limits button").click()
    expect(page.get_by_role("status")).to_contain_text("Nothing changed")


def test_edits_need_the_token_and_the_role(page: Page, gateway: GatewayServer) -> None:
    base = gateway.base_url
    with admin(gateway) as client:
        assert client.post("/team/new", json={"team_id": "vault", "max_budget": 10}).status_code == 200
        assert client.post("/team/new", json={"team_id": "home"}).status_code == 200
        ivy = client.post(
            "/user/new", json={"user_id": "ivy", "user_role": "internal_user", "teams": ["home"]}
        )
        assert ivy.status_code == 200, ivy.text
        ivy_key = ivy.json()["key"]

    sign_in(page, base, MASTER_KEY)
    missing = page.request.post(f"{base}/ui/teams/update", form={"team_id": "vault", "max_budget": "99"})
    assert missing.status == 403
    assert _info(gateway, "/team/info", team_id="vault")["team_info"]["max_budget"] == 10

    # An internal user may not raise another team's budget: the API's 403, as a page.
    page.context.clear_cookies()
    sign_in(page, base, ivy_key)
    page.goto(f"{base}/ui/teams/home")
    token = page.locator("#edit-limits input[name=csrf_token]").get_attribute("value") or ""
    refused = page.request.post(
        f"{base}/ui/teams/update",
        form={"team_id": "vault", "max_budget": "99", "was_max_budget": "10", "csrf_token": token},
    )
    assert refused.status == 403
    assert "error-page" in refused.text()
    assert _info(gateway, "/team/info", team_id="vault")["team_info"]["max_budget"] == 10
    # Nor create teams (the form is not offered; a forged POST is refused by the API).
    page.goto(f"{base}/ui/teams")
    expect(page.locator("#create-team")).to_have_count(0)
    forged = page.request.post(f"{base}/ui/teams/create", form={"team_id": "ivy-team", "csrf_token": token})
    assert forged.status == 403

"""Blocking keys, teams and customers, searching the lists by a fragment, editing budget
windows, per-model budgets and a temporary increase, and cache savings, in Debian's
Chromium (issue #18). Blocks are checked where they matter: the gateway refuses the
official openai SDK's next call, and takes it again once unblocked."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import openai
from gateway_helpers import MASTER_KEY, GatewayServer
from playwright.sync_api import Dialog, Page, expect
from ui_helpers import admin, save_windows, shot, sign_in


def _api(gateway: GatewayServer, path: str, body: dict[str, Any] | None = None, **params: str) -> Any:
    """The management API as the master key (GET with ``params``, POST with ``body``)."""
    with admin(gateway) as client:
        answer = client.post(path, json=body) if body is not None else client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return json.loads(answer.content, parse_float=Decimal)


def _call(gateway: GatewayServer, key: str) -> int:
    """One chat call through the official openai SDK: its status (200, or the refusal's)."""
    with openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0, timeout=20) as client:
        try:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


def _confirming(page: Page, questions: list[str]) -> None:
    """Accept every confirmation dialog, noting what it asked."""

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)


def test_block_and_unblock_a_key_from_the_list_and_its_page(page: Page, gateway: GatewayServer) -> None:
    raw = _api(gateway, "/key/generate", {"key_alias": "blockme"})["key"]
    assert _call(gateway, raw) == 200
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    questions: list[str] = []
    _confirming(page, questions)

    page.goto(f"{base}/ui/keys?key_alias=blockme")
    row = page.locator('tr[data-alias="blockme"]')
    expect(row.locator(".badge.blocked")).to_have_count(0)
    row.get_by_role("button", name="Block blockme").click()
    expect(page.get_by_role("status")).to_contain_text("Blocked")
    expect(page.locator('tr[data-alias="blockme"] .badge.blocked')).to_have_text("blocked")
    assert questions and questions[-1].startswith("Block blockme?")
    assert _call(gateway, raw) in (401, 403)
    shot(page, "key-blocked")

    page.locator('tr[data-alias="blockme"]').get_by_role("link", name="blockme").click()
    expect(page.get_by_role("heading", name="Key blockme")).to_be_visible()
    page.get_by_role("button", name="Unblock blockme").click()
    expect(page.get_by_role("status")).to_contain_text("Unblocked")
    expect(page.get_by_role("heading", name="Key blockme")).to_be_visible()  # back on its page
    expect(page.locator(".badge.blocked")).to_have_count(0)
    assert _call(gateway, raw) == 200


def test_dismissing_the_confirmation_blocks_nothing(page: Page, gateway: GatewayServer) -> None:
    token = _api(gateway, "/key/generate", {"key_alias": "keepme"})["token"]
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.goto(f"{base}/ui/keys/{token}")
    page.get_by_role("button", name="Block keepme").click()
    expect(page.get_by_role("heading", name="Key keepme")).to_be_visible()
    assert _api(gateway, "/key/info", key=token)["info"]["blocked"] is False


def test_block_a_team_and_a_customer(page: Page, gateway: GatewayServer) -> None:
    _api(gateway, "/team/new", {"team_id": "blockteam", "team_alias": "Block Team"})
    raw = _api(gateway, "/key/generate", {"team_id": "blockteam"})["key"]
    _api(gateway, "/customer/new", {"user_id": "blockcust", "alias": "Block Customer"})
    assert _call(gateway, raw) == 200
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    _confirming(page, [])

    page.goto(f"{base}/ui/teams")
    page.locator('tr[data-id="blockteam"]').get_by_role("button", name="Block Block Team").click()
    expect(page.locator('tr[data-id="blockteam"] .badge.blocked')).to_be_visible()
    assert _api(gateway, "/team/info", team_id="blockteam")["team_info"]["blocked"] is True
    assert _call(gateway, raw) == 403  # team_blocked, through the SDK
    shot(page, "team-blocked")
    page.goto(f"{base}/ui/teams/blockteam")
    page.get_by_role("button", name="Unblock Block Team").click()
    expect(page.get_by_role("status")).to_contain_text("Unblocked")
    assert _call(gateway, raw) == 200

    page.goto(f"{base}/ui/customers/blockcust")
    page.get_by_role("button", name="Block Block Customer").click()
    expect(page.locator("main .badge.blocked")).to_be_visible()
    assert _api(gateway, "/customer/info", end_user_id="blockcust")["blocked"] is True
    page.goto(f"{base}/ui/customers")
    expect(page.locator('tr[data-id="blockcust"] .badge.blocked')).to_be_visible()
    page.locator('tr[data-id="blockcust"]').get_by_role("button", name="Unblock Block Customer").click()
    expect(page.locator('tr[data-id="blockcust"] .badge.blocked')).to_have_count(0)
    assert _api(gateway, "/customer/info", end_user_id="blockcust")["blocked"] is False


def test_a_member_sees_no_block_button_for_teams_and_a_forged_post_is_refused(
    page: Page, gateway: GatewayServer
) -> None:
    _api(gateway, "/team/new", {"team_id": "fort"})
    _api(gateway, "/team/new", {"team_id": "camp"})
    other = _api(gateway, "/key/generate", {"team_id": "fort", "key_alias": "fort-key"})
    kim = _api(gateway, "/user/new", {"user_id": "kim", "user_role": "internal_user", "teams": ["camp"]})
    base = gateway.base_url
    sign_in(page, base, kim["key"])
    page.goto(f"{base}/ui/teams")
    expect(page.locator('tr[data-id="camp"]')).to_be_visible()
    expect(page.locator('tr[data-id="fort"]')).to_have_count(0)
    expect(page.locator("form.block-form")).to_have_count(0)
    page.goto(f"{base}/ui/teams/camp")
    expect(page.locator("form.block-form")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""

    for path, ident in (("/ui/teams/block", "fort"), ("/ui/keys/block", other["token"])):
        forged = page.request.post(
            f"{base}{path}", form={"id": ident, "action": "block", "csrf_token": token}
        )
        assert forged.status == 403, (path, forged.text())
        assert "error-page" in forged.text()
    assert _api(gateway, "/team/info", team_id="fort")["team_info"]["blocked"] is False
    assert _api(gateway, "/key/info", key=other["token"])["info"]["blocked"] is False
    assert _call(gateway, other["key"]) == 200
    # And without the session's token, even a proxy admin's POST is refused.
    page.context.clear_cookies()
    sign_in(page, base, MASTER_KEY)
    missing = page.request.post(f"{base}/ui/teams/block", form={"id": "fort", "action": "block"})
    assert missing.status == 403
    assert _api(gateway, "/team/info", team_id="fort")["team_info"]["blocked"] is False


def test_search_teams_users_and_customers_by_a_fragment(page: Page, gateway: GatewayServer) -> None:
    _api(gateway, "/team/new", {"team_id": "srch-growth", "team_alias": "Growth Marketing"})
    _api(gateway, "/team/new", {"team_id": "srch-infra", "team_alias": "Platform"})
    _api(
        gateway,
        "/user/new",
        {"user_id": "srch-ann", "user_email": "ann@Example.org", "auto_create_key": False},
    )
    _api(
        gateway, "/user/new", {"user_id": "srch-bob", "user_email": "bob@corp.test", "auto_create_key": False}
    )
    _api(gateway, "/customer/new", {"user_id": "srch-acme", "alias": "Acme Europe"})
    _api(gateway, "/customer/new", {"user_id": "srch-globex", "alias": "Globex"})
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    for section, fragment, found, other in (
        ("teams", "marKET", "srch-growth", "srch-infra"),
        ("users", "EXAMPLE.O", "srch-ann", "srch-bob"),
        ("customers", "europ", "srch-acme", "srch-globex"),
    ):
        page.goto(f"{base}/ui/{section}")
        page.get_by_role("searchbox").fill(fragment)
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator(f'tr[data-id="{found}"]')).to_be_visible()
        expect(page.locator(f'tr[data-id="{other}"]')).to_have_count(0)
        expect(page.locator("tbody tr")).to_have_count(1)
    page.goto(f"{base}/ui/customers?q=no-such-customer")
    expect(page.locator(".empty")).to_contain_text("no-such-customer")


def test_search_keys_by_a_fragment(page: Page, gateway: GatewayServer) -> None:
    _api(gateway, "/key/generate", {"key_alias": "Search-Billing-Prod"})
    _api(gateway, "/key/generate", {"key_alias": "search-chat-staging"})
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/keys")
    page.get_by_role("searchbox").fill("billing-PR")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator('tr[data-alias="Search-Billing-Prod"]')).to_be_visible()
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    assert "search=billing-PR" in page.url


def test_edit_budget_windows_model_budgets_and_a_temporary_increase(
    page: Page, gateway: GatewayServer
) -> None:
    token = _api(gateway, "/key/generate", {"key_alias": "windowed", "max_budget": 1})["token"]
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/keys/{token}")
    save_windows(
        page,
        limit_duration_0="7d",
        limit_amount_0="3.000000001",
        limit_duration_1="1h",
        limit_amount_1="0.5",
        model_model_0="gpt-4o",
        model_amount_0="0.25",
        model_duration_0="24h",
        model_rpm_0="30",
        temp_increase="2",
        temp_expiry="2030-01-02T03:04",
    )
    info = _api(gateway, "/key/info", key=token)["info"]
    assert info["budget_limits"] == [
        {"budget_duration": "7d", "max_budget": Decimal("3.000000001")},  # exact, to the nano-USD
        {"budget_duration": "1h", "max_budget": Decimal("0.5")},
    ]
    assert info["model_max_budget"]["gpt-4o"] == {
        "max_budget": Decimal("0.25"),
        "budget_duration": "24h",
        "tpm_limit": None,
        "rpm_limit": 30,
    }
    assert (info["temp_budget_increase"], info["temp_budget_expiry"]) == (2, "2030-01-02T03:04:00+00:00")
    assert info["max_budget"] == 1  # the other form's fields were not touched

    # The new windows are on the Budgets page, each with its bar.
    page.goto(f"{base}/ui/budgets")
    week = page.locator(f'tr[data-entity="{token}"][data-window="7d"]')
    expect(week).to_be_visible()
    expect(week.locator(".bar")).to_have_attribute("data-percent", "0.0")
    expect(week.locator(".barnote .money").nth(1)).to_have_attribute("data-usd", "3.000000001")
    expect(page.locator(f'tr[data-entity="{token}"][data-window="1h"]')).to_be_visible()

    # A bad period is refused by the API: the page comes back with what was typed and the
    # API's message beside the field; nothing changes.
    page.goto(f"{base}/ui/keys/{token}")
    save_windows(page, "", limit_duration_0="7x")
    expect(page.locator("#budget-error")).to_contain_text("budget_limits.0.budget_duration")
    expect(page.locator('[name="limit_duration_0"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[name="limit_duration_0"]')).to_have_value("7x")
    shot(page, "key-windows-error")
    assert _api(gateway, "/key/info", key=token)["info"]["budget_limits"][0]["budget_duration"] == "7d"

    # Emptying a row removes its window; an unchanged form sends nothing.
    page.goto(f"{base}/ui/keys/{token}")
    save_windows(page, limit_duration_1="", limit_amount_1="", temp_increase="", temp_expiry="")
    info = _api(gateway, "/key/info", key=token)["info"]
    assert [w["budget_duration"] for w in info["budget_limits"]] == ["7d"]
    assert info["temp_budget_increase"] is None and info["model_max_budget"]["gpt-4o"]["rpm_limit"] == 30
    save_windows(page, "Nothing changed: no field differed from its current value.")


def test_edit_a_teams_windows_and_a_bad_amount_is_shown_inline(page: Page, gateway: GatewayServer) -> None:
    _api(
        gateway,
        "/team/new",
        {"team_id": "wteam", "budget_limits": [{"budget_duration": "24h", "max_budget": 4}]},
    )
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/teams/wteam")
    expect(page.locator('[name="limit_duration_0"]')).to_have_value("24h")
    expect(page.locator('[name="limit_amount_0"]')).to_have_value("4")
    expect(page.locator('[name="temp_increase"]')).to_have_count(0)  # keys only
    save_windows(page, limit_amount_0="4.5", limit_duration_1="1mo", limit_amount_1="60")
    team = _api(gateway, "/team/info", team_id="wteam")["team_info"]
    assert team["budget_limits"] == [
        {"budget_duration": "24h", "max_budget": Decimal("4.5")},
        {"budget_duration": "1mo", "max_budget": 60},
    ]
    expect(page.locator('tr[data-entity="wteam"][data-window="1mo"]')).to_be_visible()
    shot(page, "team-windows")

    save_windows(page, "", model_model_0="gpt-4o", model_amount_0="lots")
    expect(page.locator("#budget-error")).to_contain_text("model_max_budget.gpt-4o.max_budget")
    expect(page.locator('[name="model_amount_0"]')).to_have_attribute("aria-invalid", "true")
    assert _api(gateway, "/team/info", team_id="wteam")["team_info"]["model_max_budget"] is None

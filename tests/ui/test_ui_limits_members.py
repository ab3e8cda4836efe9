"""Per-model rate limits, team members and a key's allowed models and tags, edited from
their pages in Debian's Chromium (issue #18). Each change is read back through the
management API and, where the gateway enforces it, checked with the official openai SDK;
what the signed-in key's role does not allow is the API's 403 page and changes nothing."""

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


def _call(gateway: GatewayServer, key: str, model: str = "gpt-4o") -> int:
    """One chat call through the official openai SDK: its status (200, or the refusal's)."""
    with openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0, timeout=20) as client:
        try:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


def test_per_model_rate_limits_on_a_key_are_enforced(page: Page, gateway: GatewayServer) -> None:
    created = _api(gateway, "/key/generate", {"key_alias": "rated"})
    token, raw = created["token"], created["key"]
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/keys/{token}")
    save_windows(
        page, rate_model_0="gpt-4o", rate_rpm_0="1", rate_model_1="claude-sonnet-4-6", rate_tpm_1="5000"
    )
    info = _api(gateway, "/key/info", key=token)["info"]
    assert info["model_rpm_limit"] == {"gpt-4o": 1}
    assert info["model_tpm_limit"] == {"claude-sonnet-4-6": 5000}
    assert info["model_max_budget"] is None and info["budget_limits"] == []  # no budget needed
    expect(page.locator('[name="rate_rpm_0"]')).to_have_value("1")
    assert _call(gateway, raw) == 200
    assert _call(gateway, raw) == 429  # one request a minute for gpt-4o
    shot(page, "key-rate-limits")

    # A bad count comes back inline (422), marked, and changes nothing.
    save_windows(page, "", rate_tpm_0="lots")
    expect(page.locator("#budget-error")).to_contain_text("model_tpm_limit.gpt-4o")
    expect(page.locator('[name="rate_tpm_0"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[name="rate_tpm_0"]')).to_have_value("lots")
    assert _api(gateway, "/key/info", key=token)["info"]["model_tpm_limit"] == {"claude-sonnet-4-6": 5000}

    # Emptying the rows removes the limits: the next call goes through.
    page.goto(f"{base}/ui/keys/{token}")
    save_windows(page, rate_model_0="", rate_rpm_0="", rate_model_1="", rate_tpm_1="")
    info = _api(gateway, "/key/info", key=token)["info"]
    assert (info["model_rpm_limit"], info["model_tpm_limit"]) == (None, None)
    assert _call(gateway, raw) == 200
    save_windows(page, "Nothing changed: no field differed from its current value.")


def test_team_rate_limits_and_a_member_may_not_set_them(page: Page, gateway: GatewayServer) -> None:
    _api(gateway, "/team/new", {"team_id": "rteam"})
    member = _api(
        gateway, "/user/new", {"user_id": "rmember", "user_role": "internal_user", "teams": ["rteam"]}
    )
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/teams/rteam")
    save_windows(page, rate_model_0="gpt-4o", rate_rpm_0="100", rate_tpm_0="20000")
    team = _api(gateway, "/team/info", team_id="rteam")["team_info"]
    assert (team["model_rpm_limit"], team["model_tpm_limit"]) == ({"gpt-4o": 100}, {"gpt-4o": 20000})
    page.goto(f"{base}/ui/users/rmember")
    expect(page.locator("#rate-rows")).to_have_count(0)  # users: not enforced, not offered

    # A plain member's forged POST is the API's 403 page; nothing changes.
    page.context.clear_cookies()
    sign_in(page, base, member["key"])
    page.goto(f"{base}/ui/teams/rteam")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    forged = page.request.post(
        f"{base}/ui/teams/budgets",
        form={
            "team_id": "rteam",
            "csrf_token": token,
            "was_model_rpm_limit": '{"gpt-4o":100}',
            "was_model_tpm_limit": '{"gpt-4o":20000}',
            "rate_model_0": "gpt-4o",
            "rate_rpm_0": "100000",
            "rate_tpm_0": "20000",
        },
    )
    assert forged.status == 403 and "error-page" in forged.text()
    assert _api(gateway, "/team/info", team_id="rteam")["team_info"]["model_rpm_limit"] == {"gpt-4o": 100}


def test_add_and_remove_team_members(page: Page, gateway: GatewayServer) -> None:
    _api(gateway, "/team/new", {"team_id": "crew", "team_alias": "Crew"})
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto(f"{base}/ui/teams/crew")
    form = page.locator("#add-member")
    form.get_by_label("User id").fill("deckhand")
    form.get_by_label("Role").select_option("user")
    form.get_by_label("Budget in the team (USD)").fill("2.000000001")
    form.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_have_text("Added deckhand to the team.")
    form.get_by_label("User id").fill("captain")
    form.get_by_label("Role").select_option("admin")
    form.get_by_role("button", name="Add member").click()
    expect(page.locator('#members-table tr[data-member="captain"] .role')).to_have_text("admin")
    expect(page.locator('#members-table tr[data-member="deckhand"] .money')).to_have_attribute(
        "data-usd", "2.000000001"
    )
    info = _api(gateway, "/team/info", team_id="crew")
    roles = {m["user_id"]: m["role"] for m in info["team_info"]["members_with_roles"]}
    assert roles == {"deckhand": "user", "captain": "admin"}
    budgets = {m["user_id"]: m["max_budget_in_team"] for m in info["team_memberships"]}
    assert budgets == {"deckhand": Decimal("2.000000001"), "captain": None}  # exact, to the nano-USD
    shot(page, "team-members")

    page.get_by_role("button", name="Remove deckhand").click()
    expect(page.get_by_role("status")).to_have_text("Removed deckhand from the team.")
    assert questions and questions[-1].startswith("Remove deckhand from the team?")
    members = _api(gateway, "/team/info", team_id="crew")["team_info"]["members_with_roles"]
    assert [m["user_id"] for m in members] == ["captain"]

    # A bad budget is the API's 422, and adds nobody.
    form.get_by_label("User id").fill("stowaway")
    form.get_by_label("Budget in the team (USD)").fill("lots")
    form.get_by_role("button", name="Add member").click()
    expect(page.locator(".error-page[data-status='422']")).to_contain_text("max_budget_in_team")
    members = _api(gateway, "/team/info", team_id="crew")["team_info"]["members_with_roles"]
    assert [m["user_id"] for m in members] == ["captain"]


def test_a_team_admin_manages_members_and_a_member_may_not(page: Page, gateway: GatewayServer) -> None:
    _api(gateway, "/team/new", {"team_id": "guild"})
    boss = _api(
        gateway, "/user/new", {"user_id": "boss", "user_role": "internal_user", "auto_create_key": True}
    )
    _api(gateway, "/team/member_add", {"team_id": "guild", "member": {"user_id": "boss", "role": "admin"}})
    pal = _api(gateway, "/user/new", {"user_id": "pal", "user_role": "internal_user", "teams": ["guild"]})
    base = gateway.base_url
    page.on("dialog", lambda dialog: dialog.accept())

    # The team's admin adds and removes a member (the API allows it).
    sign_in(page, base, boss["key"])
    page.goto(f"{base}/ui/teams/guild")
    page.locator("#add-member").get_by_label("User id").fill("newbie")
    page.locator("#add-member").get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_have_text("Added newbie to the team.")
    page.get_by_role("button", name="Remove newbie").click()
    expect(page.get_by_role("status")).to_have_text("Removed newbie from the team.")

    # A plain member sees no member forms, and their forged POSTs are 403 pages.
    page.context.clear_cookies()
    sign_in(page, base, pal["key"])
    page.goto(f"{base}/ui/teams/guild")
    expect(page.locator("#members-table")).to_be_visible()
    expect(page.locator("#add-member")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove boss")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    for path, form in (
        ("/ui/teams/members/add", {"team_id": "guild", "user_id": "intruder", "role": "admin"}),
        ("/ui/teams/members/delete", {"team_id": "guild", "user_id": "boss"}),
    ):
        forged = page.request.post(f"{base}{path}", form={**form, "csrf_token": token})
        assert forged.status == 403 and "error-page" in forged.text(), path
    members = _api(gateway, "/team/info", team_id="guild")["team_info"]["members_with_roles"]
    assert sorted(m["user_id"] for m in members) == ["boss", "pal"]
    missing = page.request.post(
        f"{base}/ui/teams/members/delete", form={"team_id": "guild", "user_id": "pal"}
    )
    assert missing.status == 403  # no CSRF token


def test_a_keys_models_and_tags(page: Page, gateway: GatewayServer) -> None:
    created = _api(gateway, "/key/generate", {"key_alias": "listed", "tags": ["old"]})
    token, raw = created["token"], created["key"]
    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/keys/{token}")
    form = page.locator("#edit-lists")
    expect(form.get_by_label("Tags (comma-separated)")).to_have_value("old")
    form.get_by_label("Allowed models (comma-separated)").fill("claude-sonnet-4-6, my-llama")
    form.get_by_label("Tags (comma-separated)").fill("billing, prod, billing")
    form.get_by_role("button", name="Save models and tags").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    info = _api(gateway, "/key/info", key=token)["info"]
    assert (info["models"], info["tags"]) == (["claude-sonnet-4-6", "my-llama"], ["billing", "prod"])
    assert _call(gateway, raw) in (401, 403)  # gpt-4o is not among its models
    shot(page, "key-models-tags")

    # Only what changed is sent; emptying the models allows every model again.
    form.get_by_label("Allowed models (comma-separated)").fill("")
    form.get_by_role("button", name="Save models and tags").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    info = _api(gateway, "/key/info", key=token)["info"]
    assert (info["models"], info["tags"]) == ([], ["billing", "prod"])
    assert _call(gateway, raw) == 200
    form.get_by_role("button", name="Save models and tags").click()
    expect(page.get_by_role("status")).to_contain_text("Nothing changed")

    # Another user's key: the API's 403 page, and nothing changes.
    _api(gateway, "/team/new", {"team_id": "lteam"})
    other = _api(
        gateway, "/user/new", {"user_id": "lother", "user_role": "internal_user", "teams": ["lteam"]}
    )
    page.context.clear_cookies()
    sign_in(page, base, other["key"])
    page.goto(f"{base}/ui/keys")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    forged = page.request.post(
        f"{base}/ui/keys/lists", form={"key": token, "models": "gpt-4o", "was_models": "", "csrf_token": csrf}
    )
    assert forged.status == 403 and "error-page" in forged.text()
    assert _api(gateway, "/key/info", key=token)["info"]["models"] == []

"""An accessibility audit of every dashboard page with axe-core, in Debian's Chromium (issue #18:
"accessible (labels, contrast, keyboard)").

axe-core (4.12.1, bundled in the axe-playwright-python dev dependency) runs in each page, with
data in it, as the master key and as a member's key, and checks the WCAG 2.0 / 2.1 A and AA rules
(with 2.2 AA's target size and axe's best practices: landmarks, heading order);
any violation, whatever its impact, fails with the rule, its impact and the first elements it
names. Overview, Spend and a key's page are audited again at a phone's width (390 px), and every
page must reflow at 320 px (no sideways scrolling but a table's own). The Keys page's create
form is used with the keyboard only: every control is reached by Tab, in order, with a visible
focus ring, and Enter on the button creates the key.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from axe_playwright_python.sync_playwright import Axe
from gateway_helpers import MASTER_KEY, GatewayServer
from playwright.sync_api import Browser, Page, expect
from ui_helpers import admin, loaded, save_windows, shot, sign_in

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
"""WCAG 2.0 and 2.1 A and AA, and 2.2 AA's new rule (target size)."""
RULE_TAGS = [*WCAG_TAGS, "best-practice"]
"""Plus axe's best practices: landmarks, one main, heading order, every piece of content in a
landmark, which no WCAG tag covers."""
AXE = Axe()


@dataclass(frozen=True)
class World:
    """What the pages show: a team with a member, their key with spend, a customer, a batch."""

    token: str
    member_key: str
    over_token: str
    """A key spent past its budget (a red bar)."""


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    answer = client.post(path, json=body)
    assert answer.status_code == 200, f"{path}: {answer.text}"
    return answer.json()


def _batch(gateway: GatewayServer, key: str) -> None:
    line = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    jsonl = json.dumps({"custom_id": "a11y-0", "method": "POST", "url": "/v1/chat/completions", "body": line})
    with openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0, timeout=30) as sdk:
        upload = sdk.files.create(file=("a11y.jsonl", io.BytesIO(jsonl.encode())), purpose="batch")
        sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")


@pytest.fixture(scope="module")
def world(gateway: GatewayServer) -> World:
    with admin(gateway) as client:
        _post(client, "/team/new", {"team_id": "a11y-team", "team_alias": "Access team", "max_budget": "5"})
        _post(client, "/team/new", {"team_id": "a11y-other", "team_alias": "Other team"})
        member = _post(
            client,
            "/user/new",
            {"user_id": "a11y-user", "user_role": "internal_user", "teams": ["a11y-team"], "max_budget": "2"},
        )
        team_admin = {"user_id": "a11y-admin", "role": "admin"}
        _post(client, "/team/member_add", {"team_id": "a11y-team", "member": team_admin})
        customer = {"user_id": "a11y-cust", "alias": "Access customer", "max_budget": "1"}
        _post(client, "/customer/new", customer)
        created = _post(
            client,
            "/key/generate",
            {
                "key_alias": "a11y-key",
                "team_id": "a11y-team",
                "user_id": "a11y-user",
                "max_budget": "0.01",
                "soft_budget": "0.005",
                "budget_duration": "1mo",
                "budget_limits": [{"budget_duration": "7d", "max_budget": "0.02"}],
            },
        )
        over = _post(client, "/key/generate", {"key_alias": "a11y-over"})
    for key in (created["key"], created["key"], created["key"], over["key"]):
        with openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0, timeout=20) as sdk:
            sdk.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "hello"}],
                max_tokens=16,
                user="a11y-cust",
            )
    with admin(gateway) as client:
        _post(client, "/key/update", {"key": over["token"], "max_budget": "0.0001"})
    _batch(gateway, created["key"])
    return World(token=created["token"], member_key=member["key"], over_token=over["token"])


def _audit(page: Page, name: str) -> None:
    """Fail with every violation of those rules axe finds on ``page``, readably. Closed
    ``<details>`` (the create forms) are opened first: axe skips what is hidden; parts
    loaded after the page are waited for."""
    loaded(page)
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    options = {"runOnly": {"type": "tag", "values": RULE_TAGS}, "resultTypes": ["violations"]}
    found = AXE.run(page, options=options).response["violations"]
    lines = []
    for v in found:
        targets = "; ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:3])
        more = f" (+{len(v['nodes']) - 3} more)" if len(v["nodes"]) > 3 else ""
        lines.append(f"  {v['id']} ({v['impact']}): {v['help']} -> {targets}{more}")
    assert not lines, f"{name} ({page.url}): {len(lines)} axe violations\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def as_admin(browser: Browser, gateway: GatewayServer, world: World) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, gateway.base_url, MASTER_KEY)
    yield page
    context.close()


@pytest.fixture(scope="module")
def as_member(browser: Browser, gateway: GatewayServer, world: World) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, gateway.base_url, world.member_key)
    yield page
    context.close()


SCOPES = ("keys", "teams", "users", "customers", "organizations")
ADMIN_PAGES = {
    "overview": "/ui/overview",
    "spend": "/ui/spend?group_by=key",
    "keys": "/ui/keys",
    "key": "/ui/keys/{token}",
    **{f"budgets-{s}": f"/ui/budgets?scope={s}" for s in SCOPES},
    "teams": "/ui/teams",
    "team": "/ui/teams/a11y-team",
    "users": "/ui/users",
    "user": "/ui/users/a11y-user",
    "customers": "/ui/customers",
    "customer": "/ui/customers/a11y-cust",
    "batches": "/ui/batches",
    "logs": "/ui/logs",
    "alerts": "/ui/alerts",
    "error-422": "/ui/spend?timezone=Not/A_Zone",
}

MEMBER_PAGES = {
    "overview": "/ui/overview",
    "spend": "/ui/spend",
    "keys": "/ui/keys",
    "key": "/ui/keys/{token}",
    "budgets-keys": "/ui/budgets?scope=keys",
    "budgets-teams": "/ui/budgets?scope=teams",
    "teams": "/ui/teams",
    "team": "/ui/teams/a11y-team",
    "user": "/ui/users/a11y-user",
    "batches": "/ui/batches",
    "logs": "/ui/logs",
    "forbidden-403": "/ui/teams/a11y-other",
}

EXPECTED_STATUS = {"error-422": 422, "forbidden-403": 403}


def _visit(page: Page, gateway: GatewayServer, world: World, name: str, path: str) -> None:
    response = page.goto(gateway.base_url + path.format(token=world.token))
    assert response is not None and response.status == EXPECTED_STATUS.get(name, 200), name
    expect(page.locator("main h1")).to_be_visible()


@pytest.mark.parametrize("name", list(ADMIN_PAGES))
def test_admin_pages_have_no_wcag_violations(
    as_admin: Page, gateway: GatewayServer, world: World, name: str
) -> None:
    _visit(as_admin, gateway, world, name, ADMIN_PAGES[name])
    if name == "spend":
        expect(as_admin.locator("#spend-chart[data-drawn=true] canvas")).to_be_visible()
    _audit(as_admin, name)


@pytest.mark.parametrize("name", list(MEMBER_PAGES))
def test_member_pages_have_no_wcag_violations(
    as_member: Page, gateway: GatewayServer, world: World, name: str
) -> None:
    _visit(as_member, gateway, world, name, MEMBER_PAGES[name])
    _audit(as_member, name)


def test_sign_in_page_and_its_error_have_no_wcag_violations(page: Page, gateway: GatewayServer) -> None:
    page.goto(f"{gateway.base_url}/ui/login")
    _audit(page, "sign-in")
    page.get_by_label("Key").fill("sk-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    _audit(page, "sign-in refused")


@pytest.mark.parametrize("path", ["/ui/overview", "/ui/spend?group_by=model", "/ui/keys/{token}"])
def test_phone_width_pages_have_no_wcag_violations(
    browser: Browser, gateway: GatewayServer, world: World, path: str
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, gateway.base_url, MASTER_KEY)
        page.goto(gateway.base_url + path.format(token=world.token))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        _audit(page, f"{path} at 390 px")
        if path.startswith("/ui/keys/"):
            shot(page, "key-phone")
    finally:
        context.close()


def test_a_refused_form_a_notice_and_a_blocked_badge_have_no_wcag_violations(
    as_admin: Page, gateway: GatewayServer, world: World
) -> None:
    as_admin.on("dialog", lambda dialog: dialog.accept())
    as_admin.goto(f"{gateway.base_url}/ui/keys/{world.token}")
    save_windows(as_admin, "", limit_duration_0="7x")  # the API's 422, shown in the form
    expect(as_admin.locator('[name="limit_duration_0"]')).to_have_attribute("aria-invalid", "true")
    _audit(as_admin, "key page, refused windows")
    as_admin.goto(f"{gateway.base_url}/ui/teams/a11y-other")
    as_admin.get_by_role("button", name="Block Other team").click()
    expect(as_admin.get_by_role("status")).to_contain_text("Blocked")
    expect(as_admin.locator(".badge.blocked")).to_be_visible()
    _audit(as_admin, "team page, blocked, with a notice")


def test_a_bar_past_its_limit_keeps_its_meter_value_in_range(
    as_admin: Page, gateway: GatewayServer, world: World
) -> None:
    """ARIA: a meter's aria-valuenow lies within its range; how far past the limit is in its text."""
    as_admin.goto(f"{gateway.base_url}/ui/budgets?scope=keys")
    meter = as_admin.locator(f'tr[data-entity="{world.over_token}"]').get_by_role("meter")
    expect(meter).to_have_accessible_name(re.compile(r"a11y-over"))
    assert (meter.get_attribute("aria-valuenow"), meter.get_attribute("aria-valuemax")) == ("100", "100")
    used = Decimal(meter.get_attribute("data-percent") or "nan")
    assert used > 100
    expect(meter).to_have_attribute("aria-valuetext", f"{used}% used")


def _luminance(rgb: str) -> float:
    """The relative luminance (WCAG 2.x) of a computed ``rgb(r, g, b)`` colour."""
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(one: str, two: str) -> float:
    light, dark = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_colours_axe_leaves_out_meet_wcag_aa(as_admin: Page, gateway: GatewayServer) -> None:
    """What axe does not measure: placeholder text (1.4.3: 4.5:1), and an input's border and the
    focus ring (1.4.11: 3:1 against the page and the cards)."""
    as_admin.goto(f"{gateway.base_url}/ui/keys")
    as_admin.get_by_text("Create a key").click()
    budget = as_admin.locator("#new-budget")
    budget.focus()
    colours = budget.evaluate(
        """el => {
            const style = getComputedStyle(el);
            return {
                placeholder: getComputedStyle(el, "::placeholder").color,
                background: style.backgroundColor,
                border: style.borderTopColor,
                ring: style.outlineColor,
                page: getComputedStyle(document.body).backgroundColor,
            };
        }"""
    )
    white = "rgb(255, 255, 255)"
    assert _contrast(colours["placeholder"], colours["background"]) >= 4.5, colours
    assert _contrast(colours["border"], white) >= 3, colours
    assert min(_contrast(colours["ring"], white), _contrast(colours["ring"], colours["page"])) >= 3, colours


def test_the_spend_filters_keep_the_focus_when_htmx_swaps_the_page(
    as_admin: Page, gateway: GatewayServer, world: World
) -> None:
    """Changing the grouping with the keyboard redraws the page in place; the focus stays on the
    select (htmx restores it by id), so a keyboard user is not sent back to the top."""
    as_admin.goto(f"{gateway.base_url}/ui/spend?group_by=team")
    group_by = as_admin.get_by_label("Group by")
    group_by.focus()
    as_admin.keyboard.press("ArrowDown")
    expect(as_admin).not_to_have_url(re.compile(r"group_by=team"))
    expect(as_admin.locator("#spend-chart[data-drawn=true] canvas")).to_be_visible()
    expect(as_admin.get_by_label("Group by")).to_be_focused()

    # A date typed with the keys, segment by segment, is applied once, whole, on Enter.
    requests: list[str] = []
    as_admin.on("request", lambda r: requests.append(r.url) if "/ui/spend?" in r.url else None)
    as_admin.get_by_label("From").focus()
    as_admin.keyboard.type("01152026")  # mm dd yyyy, the en-US order of Chromium's date field
    as_admin.wait_for_timeout(300)
    assert requests == []
    as_admin.keyboard.press("Enter")
    expect(as_admin).to_have_url(re.compile(r"start_date=2026-01-15"))
    assert len(requests) == 1


def test_every_page_reflows_at_320_px(browser: Browser, gateway: GatewayServer, world: World) -> None:
    """WCAG 1.4.10: at 320 CSS px nothing but a table's own scroll region scrolls sideways."""
    context = browser.new_context(viewport={"width": 320, "height": 700}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, gateway.base_url, MASTER_KEY)
        wide = {}
        for name, path in ADMIN_PAGES.items():
            page.goto(gateway.base_url + path.format(token=world.token))
            page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 320:
                wide[name] = width
        assert not wide, f"pages wider than 320 px: {wide}"
    finally:
        context.close()


def _focused(page: Page) -> dict[str, str]:
    """The focused element: its id (or tag and text) and whether a focus ring is drawn."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {
                id: el.id || el.tagName.toLowerCase() + ":" + (el.textContent || "").trim(),
                ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2 ? "yes" : "no",
            };
        }"""
    )


def test_create_a_key_with_the_keyboard_only(page: Page, gateway: GatewayServer, world: World) -> None:
    sign_in(page, gateway.base_url, MASTER_KEY)
    page.goto(f"{gateway.base_url}/ui/keys")
    page.keyboard.press("Tab")
    first = _focused(page)
    assert first["id"].startswith("a:Skip to content") and first["ring"] == "yes"
    for _ in range(30):  # the header's links and the sign-out button, then the form's summary
        page.keyboard.press("Tab")
        now = _focused(page)
        assert now["ring"] == "yes", now
        if now["id"].startswith("summary:"):
            break
    else:
        pytest.fail("Tab never reached the 'Create a key' summary")
    page.keyboard.press("Enter")  # opens the form
    fields = ["new-alias", "new-budget", "new-soft", "new-duration", "new-team", "new-user"]
    typed = {"new-alias": "by-keyboard", "new-budget": "0.5"}
    for expected in [*fields, "button:Create key"]:
        page.keyboard.press("Tab")
        now = _focused(page)
        assert now == {"id": expected, "ring": "yes"}, now
        if expected in typed:
            page.keyboard.type(typed[expected])
    shot(page, "keys-keyboard")  # the focus ring on the Create key button
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Key created")).to_be_visible()
    _audit(page, "key created")
    with admin(gateway) as client:
        keys = client.get("/key/list", params={"return_full_object": "true", "key_alias": "by-keyboard"})
    [key] = json.loads(keys.content, parse_float=Decimal)["keys"]
    assert key["max_budget"] == Decimal("0.5")

"""What the browser tests share: signing in, screenshots, exact amounts, an admin client."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from gateway_helpers import MASTER_KEY, GatewayServer
from playwright.sync_api import Page, expect

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def loaded(page: Page) -> None:
    """Wait until the parts a page loads after it (marked ``aria-busy``: the Overview's
    budgets nearest their limit) have arrived."""
    expect(page.locator("[aria-busy=true]")).to_have_count(0)


def shot(page: Page, name: str) -> None:
    """The page, whole and loaded, to docs/screenshots/<name>.png (linked from docs/dashboard.md)."""
    loaded(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def usd(page: Page, selector: str) -> Decimal:
    """The exact USD of the first money figure matching ``selector`` (its ``data-usd``)."""
    return Decimal(page.locator(selector).first.get_attribute("data-usd") or "nan")


def admin(gateway: GatewayServer) -> httpx.Client:
    """The management API with the master key."""
    return httpx.Client(
        base_url=gateway.base_url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=60
    )


def admin_post(gateway: GatewayServer, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to the management API with the master key; its JSON answer (a 200)."""
    with admin(gateway) as client:
        answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def save_windows(page: Page, expect_status: str = "Saved.", **fields: str) -> None:
    """Fill the windows form of an entity's page (field name → value), save it, and (unless
    ``expect_status`` is empty) wait for its status line."""
    form = page.locator("#edit-windows")
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.get_by_role("button", name="Save windows and model budgets").click()
    if expect_status:
        expect(page.get_by_role("status")).to_have_text(expect_status)

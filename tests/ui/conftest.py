"""A real gateway on a loopback port (mock provider, SQLite ledger) and Debian's Chromium.

The browser is the system's ``/usr/bin/chromium`` driven by Playwright (no browser is ever
downloaded). When it is missing the tests fail, naming the package to install: CI
(``.ci/run``) installs it with apt-get.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from gateway_helpers import GatewayServer, Ledger, make_config
from playwright.sync_api import Browser, Page, sync_playwright

from spendgate.providers.mock import MockServer, run_mock_provider

CHROMIUM = os.environ.get("SPENDGATE_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture(scope="module")
def ui_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui")


@pytest.fixture(scope="module")
def gateway(mock_server: MockServer, ui_dir: Path) -> Iterator[GatewayServer]:
    config = make_config(mock_server.base_url, ui_dir / "spendgate.db", ui_dir / "journal")
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def ledger(gateway: GatewayServer, ui_dir: Path) -> Ledger:
    return Ledger(ui_dir / "spendgate.db")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()

"""``spendgate keys|teams|users|budget`` against the admin app, in-process over ASGI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from admin_helpers import MASTER, copy_database
from sqlalchemy import select
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from spendgate.admin import build_admin_app
from spendgate.cli import _GROUPS, _admin_client, budget, keys, teams, users
from spendgate.core.keys import hash_key
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import VirtualKey

runner = CliRunner()
root = typer.Typer()
for module, name in ((keys, "keys"), (teams, "teams"), (users, "users"), (budget, "budget")):
    root.add_typer(module.app, name=name)


@pytest.fixture
def gateway(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the CLI's HTTP client at an admin app on a private database; yields its URL."""
    url = copy_database(sqlite_template, tmp_path / "cli.db")
    # Each CLI command runs its own event loop, so no pooled connection may outlive one.
    engine = create_engine(url, poolclass=NullPool)
    monkeypatch.setattr(_admin_client, "transport", httpx.ASGITransport(app=build_admin_app(engine, MASTER)))
    monkeypatch.setenv("SPENDGATE_MASTER_KEY", MASTER)
    yield url
    asyncio.run(engine.dispose())


def run(*args: str) -> Any:
    result = runner.invoke(root, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output, parse_float=Decimal)


def test_groups_are_registered() -> None:
    for module in ("keys", "teams", "users", "budget"):
        assert (f"spendgate.cli.{module}", module) in _GROUPS


def test_keys_lifecycle(gateway: str) -> None:
    created = run(
        "keys", "create", "--alias", "ci", "--max-budget", "10.000000001", "--budget-duration", "30d"
    )
    raw = created["key"]
    assert created["max_budget"] == Decimal("10.000000001") and created["budget_duration"] == "30d"

    async def stored() -> list[str]:
        engine = create_engine(gateway, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(select(VirtualKey.token))).scalars())
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) == [hash_key(raw)]
    listed = run("keys", "list")
    assert [k["key_alias"] for k in listed["keys"]] == ["ci"] and "key" not in listed["keys"][0]
    assert run("keys", "info", raw)["info"]["key_alias"] == "ci"
    assert run("keys", "block", raw)["blocked"] is True
    assert run("keys", "unblock", hash_key(raw))["blocked"] is False
    new = run("keys", "regenerate", raw)["key"]
    assert run("keys", "delete", new) == {"deleted_keys": [new]}
    assert run("keys", "list")["keys"] == []
    # tables
    result = runner.invoke(root, ["keys", "create", "--alias", "tbl", "--max-budget", "2"])
    assert result.exit_code == 0 and "shown once" in result.output and "sk-" in result.output
    result = runner.invoke(root, ["keys", "list"])
    assert result.exit_code == 0 and "tbl" in result.output and "$2" in result.output


def test_keys_list_shows_budget_limits_windows(gateway: str) -> None:
    windows = [{"budget_duration": "1d", "max_budget": 5}, {"budget_duration": "30d", "max_budget": "50.5"}]
    body = {"key_alias": "win", "budget_limits": windows}
    _admin_client.call("http://gateway", MASTER, "POST", "/key/generate", body)
    result = runner.invoke(root, ["keys", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "$5 / 1d" in result.output and "$50.5 / 30d" in result.output
    assert "unlimited" not in result.output  # windows are budgets too (issue #17 item 7)


def test_teams_and_users(gateway: str) -> None:
    team = run(
        "teams",
        "create",
        "--team-id",
        "ml",
        "--alias",
        "ML",
        "--max-budget",
        "100",
        "--budget-duration",
        "1mo",
    )
    assert team["max_budget"] == 100
    user = run("users", "create", "--user-id", "ann", "--email", "ann@example.com", "--max-budget", "5")
    assert user["key"].startswith("sk-") and user["max_budget"] == 5
    added = run("teams", "add-member", "ml", "ann", "--role", "admin", "--max-budget-in-team", "2.5")
    assert added["updated_team_memberships"][0]["max_budget_in_team"] == Decimal("2.5")
    assert [t["team_id"] for t in run("teams", "list")] == ["ml"]
    assert [u["user_id"] for u in run("users", "list")["users"]] == ["ann"]
    result = runner.invoke(root, ["teams", "list"])
    assert result.exit_code == 0 and "ml" in result.output and "ann (admin)" in result.output
    result = runner.invoke(root, ["users", "list"])
    assert result.exit_code == 0 and "ann" in result.output


def test_errors_are_one_line_with_the_server_message(gateway: str) -> None:
    result = runner.invoke(root, ["keys", "create", "--budget-duration", "soon"])
    assert result.exit_code == 1 and "Use a format like" in result.output and "Traceback" not in result.output
    result = runner.invoke(root, ["keys", "info", "sk-missing"])
    assert result.exit_code == 1 and "404" in result.output
    result = runner.invoke(root, ["keys", "create", "--max-budget", "lots"])
    assert result.exit_code == 2 and "--max-budget" in result.output
    result = runner.invoke(root, ["keys", "list", "--master-key", "sk-wrong"])
    assert result.exit_code == 1 and "401" in result.output
    result = runner.invoke(root, ["budget", "explain", "--key", "sk-missing"])
    assert result.exit_code == 1 and "404" in result.output


def test_unreachable_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(_admin_client, "transport", httpx.MockTransport(refuse))
    result = runner.invoke(root, ["keys", "list", "--master-key", "k"])
    assert result.exit_code == 2 and "cannot reach the gateway" in result.output

"""``spendgate teams``: create and list teams, add members with in-team budgets."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from spendgate.cli._admin_client import (
    DEFAULT_URL,
    JsonOpt,
    KeyOpt,
    UrlOpt,
    call,
    parse_usd,
    print_json,
    show_usd,
)
from spendgate.cli._output import console

__all__ = ["app"]

app = typer.Typer(help="Manage teams on a running gateway.", no_args_is_help=True)


def _team_table(teams: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("team", "alias", "organization", "max budget", "window", "members", "blocked"):
        table.add_column(column)
    for t in teams:
        table.add_row(
            t["team_id"],
            t.get("team_alias") or "",
            t.get("organization_id") or "",
            show_usd(t.get("max_budget")),
            t.get("budget_duration") or "",
            ", ".join(f"{m['user_id']} ({m['role']})" for m in t.get("members_with_roles", ())),
            "yes" if t.get("blocked") else "",
        )
    return table


@app.command()
def create(
    team_id: Annotated[str | None, typer.Option("--team-id", help="Default: a new UUID.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="team_alias.")] = None,
    organization_id: Annotated[str | None, typer.Option("--organization-id")] = None,
    max_budget: Annotated[str | None, typer.Option("--max-budget", help="USD; omit for unlimited.")] = None,
    budget_duration: Annotated[str | None, typer.Option("--budget-duration", help="e.g. 30d.")] = None,
    models: Annotated[list[str] | None, typer.Option("--model", help="Allowed model (repeat).")] = None,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a team."""
    body: dict[str, Any] = {
        "team_id": team_id,
        "team_alias": alias,
        "organization_id": organization_id,
        "max_budget": parse_usd(max_budget, "--max-budget"),
        "budget_duration": budget_duration,
        "models": models or None,
    }
    data = call(url, master_key, "POST", "/team/new", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(data)
    else:
        console.print(_team_table([data], "created team"))


@app.command("list")
def list_teams(
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List teams."""
    data = call(url, master_key, "GET", "/team/list")
    if as_json:
        print_json(data)
    else:
        console.print(_team_table(data, "teams"))


@app.command("add-member")
def add_member(
    team_id: Annotated[str, typer.Argument()],
    user_id: Annotated[str, typer.Argument(help="Created as an internal_user if new.")],
    role: Annotated[str, typer.Option("--role", help="admin or user.")] = "user",
    max_budget_in_team: Annotated[
        str | None, typer.Option("--max-budget-in-team", help="The member's budget in this team, USD.")
    ] = None,
    budget_duration: Annotated[str | None, typer.Option("--budget-duration")] = None,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a member to a team, optionally with their own budget inside it."""
    body: dict[str, Any] = {"team_id": team_id, "member": {"user_id": user_id, "role": role}}
    budget = parse_usd(max_budget_in_team, "--max-budget-in-team")
    if budget is not None:
        body["max_budget_in_team"] = budget
    if budget_duration is not None:
        body["budget_duration"] = budget_duration
    data = call(url, master_key, "POST", "/team/member_add", body)
    if as_json:
        print_json(data)
        return
    console.print(_team_table([data], "team"))

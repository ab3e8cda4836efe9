"""``spendgate users``: create and list internal users."""

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

app = typer.Typer(help="Manage users on a running gateway.", no_args_is_help=True)


def _user_table(users: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("user", "email", "role", "max budget", "window", "teams", "blocked"):
        table.add_column(column)
    for u in users:
        table.add_row(
            u["user_id"],
            u.get("user_email") or "",
            u.get("user_role") or "",
            show_usd(u.get("max_budget")),
            u.get("budget_duration") or "",
            ", ".join(u.get("teams", ())),
            "yes" if u.get("blocked") else "",
        )
    return table


@app.command()
def create(
    user_id: Annotated[str | None, typer.Option("--user-id", help="Default: a new UUID.")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    role: Annotated[
        str,
        typer.Option("--role", help="proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer."),
    ] = "internal_user",
    max_budget: Annotated[str | None, typer.Option("--max-budget", help="USD; omit for unlimited.")] = None,
    budget_duration: Annotated[str | None, typer.Option("--budget-duration")] = None,
    team: Annotated[list[str] | None, typer.Option("--team", help="Add to this team (repeat).")] = None,
    no_key: Annotated[bool, typer.Option("--no-key", help="Do not create a key for the user.")] = False,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user (and a key for them, shown once, unless --no-key)."""
    body: dict[str, Any] = {
        "user_id": user_id,
        "user_email": email,
        "user_role": role,
        "max_budget": parse_usd(max_budget, "--max-budget"),
        "budget_duration": budget_duration,
        "teams": team or None,
        "auto_create_key": not no_key,
    }
    data = call(url, master_key, "POST", "/user/new", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(data)
        return
    console.print(_user_table([data], "created user"))
    if data.get("key"):
        console.print(f"key: [bold]{data['key']}[/] (shown once)", highlight=False, soft_wrap=True)


@app.command("list")
def list_users(
    role: Annotated[str | None, typer.Option("--role")] = None,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000)] = 100,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List users."""
    data = call(
        url, master_key, "GET", "/user/list", params={"role": role, "page": page, "page_size": page_size}
    )
    if as_json:
        print_json(data)
    else:
        console.print(_user_table(data["users"], f"users ({data['total']})"))

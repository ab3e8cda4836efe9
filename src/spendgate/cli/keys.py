"""``spendgate keys``: create, list, inspect, block and delete virtual keys."""

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

app = typer.Typer(help="Manage virtual keys on a running gateway.", no_args_is_help=True)


def _key_table(keys: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("key", "alias", "user", "team", "max budget", "window", "blocked", "expires"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.get("key_name") or k["token"][:12],
            k.get("key_alias") or "",
            k.get("user_id") or "",
            k.get("team_id") or "",
            _budgets(k),
            k.get("budget_duration") or "",
            "yes" if k.get("blocked") else "",
            str(k.get("expires") or ""),
        )
    return table


def _budgets(key: dict[str, Any]) -> str:
    """The key's budgets: ``max_budget`` (its window is the next column) and each
    ``budget_limits`` window as ``$5 / 1d``; "unlimited" only when there are none."""
    lines = [] if key.get("max_budget") is None else [show_usd(key["max_budget"])]
    for window in key.get("budget_limits") or ():
        lines.append(f"{show_usd(window.get('max_budget'))} / {window.get('budget_duration')}")
    return "\n".join(lines) or "unlimited"


@app.command()
def create(
    alias: Annotated[str | None, typer.Option("--alias", help="key_alias (unique).")] = None,
    max_budget: Annotated[str | None, typer.Option("--max-budget", help="USD; omit for unlimited.")] = None,
    budget_duration: Annotated[
        str | None, typer.Option("--budget-duration", help="e.g. 1d, 7d, 30d.")
    ] = None,
    soft_budget: Annotated[str | None, typer.Option("--soft-budget", help="USD; alerts only.")] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="Expire after, e.g. 30d.")] = None,
    models: Annotated[list[str] | None, typer.Option("--model", help="Allowed model (repeat).")] = None,
    user_id: Annotated[str | None, typer.Option("--user-id")] = None,
    team_id: Annotated[str | None, typer.Option("--team-id")] = None,
    end_user_id: Annotated[
        str | None, typer.Option("--customer", help="Bind the key to this customer.")
    ] = None,
    tpm_limit: Annotated[int | None, typer.Option("--tpm-limit")] = None,
    rpm_limit: Annotated[int | None, typer.Option("--rpm-limit")] = None,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key. The raw key is printed once: store it now."""
    body: dict[str, Any] = {
        "key_alias": alias,
        "max_budget": parse_usd(max_budget, "--max-budget"),
        "budget_duration": budget_duration,
        "soft_budget": parse_usd(soft_budget, "--soft-budget"),
        "duration": duration,
        "models": models or None,
        "user_id": user_id,
        "team_id": team_id,
        "end_user_id": end_user_id,
        "tpm_limit": tpm_limit,
        "rpm_limit": rpm_limit,
    }
    created = call(url, master_key, "POST", "/key/generate", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(created)
        return
    console.print(_key_table([created], "created key"))
    console.print(f"key: [bold]{created['key']}[/] (shown once)", highlight=False, soft_wrap=True)


@app.command("list")
def list_keys(
    user_id: Annotated[str | None, typer.Option("--user-id")] = None,
    team_id: Annotated[str | None, typer.Option("--team-id")] = None,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    size: Annotated[int, typer.Option("--size", min=1, max=1000)] = 100,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never their raw values)."""
    params = {
        "user_id": user_id,
        "team_id": team_id,
        "page": page,
        "size": size,
        "return_full_object": "true",
    }
    data = call(url, master_key, "GET", "/key/list", params=params)
    if as_json:
        print_json(data)
        return
    console.print(
        _key_table(data["keys"], f"keys (page {data['current_page']} of {data['total_pages'] or 1})")
    )


@app.command()
def info(
    key: Annotated[str, typer.Argument(help="The raw key or its hash.")],
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one key."""
    data = call(url, master_key, "GET", "/key/info", params={"key": key})
    if as_json:
        print_json(data)
        return
    k = data["info"]
    table = Table(title=f"key {k['key_name']}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name, value in k.items():
        if name in ("max_budget", "soft_budget", "temp_budget_increase"):
            value = show_usd(value) if value is not None else ""
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


def _simple(method: str, path: str, body: dict[str, Any], url: str, key: str | None, as_json: bool) -> Any:
    data = call(url, key, method, path, body)
    if as_json:
        print_json(data)
    return data


@app.command()
def delete(
    keys: Annotated[list[str], typer.Argument(help="Raw keys or hashes.")],
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete keys."""
    data = _simple("POST", "/key/delete", {"keys": keys}, url, master_key, as_json)
    if not as_json:
        console.print(f"deleted {len(data['deleted_keys'])} key(s)")


@app.command()
def block(
    key: Annotated[str, typer.Argument(help="The raw key or its hash.")],
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Block a key: its requests are refused until it is unblocked."""
    data = _simple("POST", "/key/block", {"key": key}, url, master_key, as_json)
    if not as_json:
        console.print(f"blocked {data['key_name']}")


@app.command()
def unblock(
    key: Annotated[str, typer.Argument(help="The raw key or its hash.")],
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unblock a key."""
    data = _simple("POST", "/key/unblock", {"key": key}, url, master_key, as_json)
    if not as_json:
        console.print(f"unblocked {data['key_name']}")


@app.command()
def regenerate(
    key: Annotated[str, typer.Argument(help="The raw key or its hash.")],
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a key's secret; the old one stops working at once."""
    data = _simple("POST", "/key/regenerate", {"key": key}, url, master_key, as_json)
    if not as_json:
        console.print(f"new key: [bold]{data['key']}[/] (shown once)", highlight=False, soft_wrap=True)

"""``spendgate budget``: explain a key's budgets; list budget profiles."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from spendgate.cli._admin_client import DEFAULT_URL, JsonOpt, KeyOpt, UrlOpt, call, print_json, show_usd
from spendgate.cli._output import console

__all__ = ["app"]

app = typer.Typer(help="Budgets on a running gateway.", no_args_is_help=True)

_VERDICT_STYLE = {"exceeded": "bold red", "soft_exceeded": "yellow", "ok": "green", "unlimited": "dim"}


@app.command()
def explain(
    key: Annotated[str, typer.Option("--key", help="The raw key or its hash.")],
    customer: Annotated[
        str | None, typer.Option("--customer", help="The end customer of the request.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model of the request.")] = None,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every budget scope and window that applies to a request with this key."""
    body: dict[str, Any] = {"key": key}
    if customer is not None:
        body["customer"] = customer
    if model is not None:
        body["model"] = model
    data = call(url, master_key, "POST", "/budget/explain", body)
    if as_json:
        print_json(data)
        return
    title = f"budgets of key {data.get('key_alias') or data['key'][:12]}: {data['verdict']}"
    table = Table(title=title, title_justify="left")
    for column in ("scope", "window", "spend", "reserved", "limit", "remaining", "period", "verdict"):
        table.add_column(column)
    for w in data["windows"]:
        period = f"{w['period_start']} → {w['period_end'] or '∞'}"
        style = _VERDICT_STYLE.get(w["verdict"], "")
        table.add_row(
            w["scope"],
            w["window"],
            show_usd(w["spend"]),
            show_usd(w["reserved"]),
            show_usd(w["limit"]),
            show_usd(w["remaining"]),
            period,
            f"[{style}]{w['verdict']}[/]" if style else w["verdict"],
        )
    console.print(table)


@app.command("list")
def list_budgets(
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List budget profiles."""
    data = call(url, master_key, "GET", "/budget/list")
    if as_json:
        print_json(data)
        return
    table = Table(title="budget profiles", title_justify="left")
    for column in ("budget", "max budget", "soft budget", "window", "tpm", "rpm"):
        table.add_column(column)
    for b in data:
        table.add_row(
            b["budget_id"],
            show_usd(b["max_budget"]),
            show_usd(b["soft_budget"]) if b["soft_budget"] is not None else "",
            b["budget_duration"] or "",
            str(b["tpm_limit"] or ""),
            str(b["rpm_limit"] or ""),
        )
    console.print(table)

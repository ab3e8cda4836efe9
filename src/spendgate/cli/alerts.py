"""``spendgate alerts``: the alerts decided and how their delivery went; a test alert.

``list`` reads the database directly, like ``spendgate batches list``: each alert (the
decision row) with its channels' outbox state (sent, pending with its attempts and next
try, dead) — what an operator wants to see when someone asks "did the 80 % alert go out?".
``test`` asks the running gateway (``POST /alerting/test`` with the master key), because
only the gateway knows the configured channels; its sender job then delivers the test alert.
``report`` records a scheduled spend report now (from the config and the database, as the
report scheduler would); the gateway's sender job delivers it.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from spendgate.alerts import KINDS, OutboxRepository, routing_from_config
from spendgate.cli._admin_client import DEFAULT_URL, JsonOpt, KeyOpt, UrlOpt, call, print_json
from spendgate.cli._database import DatabaseUrlOpt, read_database
from spendgate.cli._output import console, fail
from spendgate.config import load_config
from spendgate.core.money import format_usd, usd_text
from spendgate.errors import ConfigurationError
from spendgate.jobs.report_scheduler import ReportScheduler, global_budget_of, report_specs
from spendgate.ledger.local_days import day_start
from spendgate.stores.database.models import AlertOutboxRow, AlertRow

__all__ = ["alert_json", "app"]

app = typer.Typer(
    help="Alerts: what was decided, where it was delivered; send a test alert.", no_args_is_help=True
)


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _channel_json(row: AlertOutboxRow) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": _when(row.next_attempt_at) if row.status == "pending" else None,
        "sent_at": _when(row.sent_at),
        "last_error": row.last_error,
    }


def alert_json(alert: AlertRow, outbox: list[AlertOutboxRow]) -> dict[str, Any]:
    """One alert and its deliveries, JSON-safe (money: nano-USD integers + exact USD text)."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "scope_type": alert.scope_type,
        "scope_id": alert.scope_id,
        "scope_name": alert.scope_name,
        "window": alert.window or None,
        "period_start": _when(alert.period_start) if alert.window else None,
        "threshold_percent": alert.threshold or None,
        "spend_nanos": alert.spend_nanos,
        "spend_usd": None if alert.spend_nanos is None else usd_text(alert.spend_nanos),
        "limit_nanos": alert.limit_nanos,
        "limit_usd": None if alert.limit_nanos is None else usd_text(alert.limit_nanos),
        "message": alert.message,
        "created_at": _when(alert.created_at),
        "channels": [_channel_json(row) for row in outbox],
    }


def _status(row: AlertOutboxRow) -> str:
    if row.status == "pending":
        return f"{row.channel}: pending ({row.attempts} tried)" if row.attempts else f"{row.channel}: pending"
    return f"{row.channel}: {row.status}" + (f" ({row.attempts} tries)" if row.attempts > 1 else "")


async def _recent(
    engine: AsyncEngine, limit: int, kind: str | None
) -> list[tuple[AlertRow, list[AlertOutboxRow]]]:
    async with AsyncSession(engine) as session:
        return await OutboxRepository(session).recent_alerts(limit, kind)


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(KINDS)}.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """The newest alerts and each channel's delivery status (from the database)."""
    if kind is not None and kind not in KINDS:
        fail(f"--kind: unknown alert kind {kind!r} (one of {', '.join(KINDS)})")
    rows = read_database(database_url, lambda engine: _recent(engine, limit, kind))
    if as_json:
        sys.stdout.write(
            orjson.dumps({"alerts": [alert_json(a, o) for a, o in rows]}, option=orjson.OPT_INDENT_2).decode()
            + "\n"
        )
        return
    if not rows:
        console.print("no alerts")
        return
    table = Table(title="Alerts", title_justify="left")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("kind")
    table.add_column("scope")
    table.add_column("window")
    table.add_column("threshold", justify="right")
    table.add_column("spend / limit", justify="right", no_wrap=True)
    table.add_column("delivery")
    for alert, outbox in rows:
        money = " / ".join(
            format_usd(v) if v is not None else "—" for v in (alert.spend_nanos, alert.limit_nanos)
        )
        cells = (
            alert.created_at.strftime("%Y-%m-%d %H:%M"),
            alert.kind,
            f"{alert.scope_type} {alert.scope_name or alert.scope_id}",
            alert.window or "—",
            f"{alert.threshold}%" if alert.threshold else "—",
            money if alert.spend_nanos is not None or alert.limit_nanos is not None else "—",
            "\n".join(_status(row) for row in outbox) or "no channel",
        )
        # Text, not markup: names come from callers, and "[/]" would crash the table while
        # "[link=…]" would hide where a link goes.
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


@app.command()
def test(
    channel: Annotated[
        str | None,
        typer.Option("--channel", help="Only this channel (slack, webhook, email, slack:<type>:<n>)."),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", help="The test alert's text.")] = None,
    url: UrlOpt = DEFAULT_URL,
    master_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a test alert through the running gateway's outbox (master key). Exit 1 if no
    channel is configured."""
    body: dict[str, Any] = {}
    if channel is not None:
        body["channel"] = channel
    if message is not None:
        body["message"] = message
    data = call(url, master_key, "POST", "/alerting/test", body=body)
    if not isinstance(data, dict) or not isinstance(data.get("enqueued"), int):
        fail(f"POST /alerting/test: unexpected answer {str(data)[:200]!r}", code=1)
    if as_json:
        print_json(data)
    else:
        console.print(Text(str(data.get("message") or "")), highlight=False)
    if data["enqueued"] == 0:
        raise typer.Exit(1)


@app.command()
def report(
    config: Annotated[Path, typer.Option("--config", "-c", help="The gateway's YAML config.")],
    name: Annotated[str, typer.Option("--name", help="The report (alerting_args.spend_reports[].name).")],
    period: Annotated[
        str | None,
        typer.Option(
            "--period", help="A local date (YYYY-MM-DD) in the period; default: the last completed."
        ),
    ] = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a scheduled spend report now, for the gateway's sender to deliver. A period
    already reported is not recorded again (exit 1)."""
    try:
        loaded = load_config(config)
        specs = {s.name: s for s in report_specs(loaded, routing_from_config(loaded, os.environ))}
    except ConfigurationError as exc:
        fail(str(exc))
    spec = specs.get(name)
    if spec is None:
        fail(f"--name: no report named {name!r} (configured: {', '.join(sorted(specs)) or 'none'})")
    at = None
    if period is not None:
        try:
            at = day_start(date.fromisoformat(period), spec.timezone)
        except (ValueError, OverflowError):
            fail(f"--period: expected a date YYYY-MM-DD, got {period!r}")

    async def send(engine: AsyncEngine) -> list[tuple[str, bool]]:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        scheduler = ReportScheduler(
            sessions,
            [spec],
            default_tz=loaded.litellm_settings.timezone,
            global_budget=global_budget_of(loaded),
        )
        return await scheduler.send(name, at)

    results = read_database(database_url or loaded.general_settings.database_url, send)
    recorded = [alert_id for alert_id, created in results if created]
    if as_json:
        print_json({"report": name, "alerts": [{"alert_id": a, "recorded": c} for a, c in results]})
    else:
        for alert_id, created in results:
            state = "recorded: the gateway's sender delivers it" if created else "already recorded"
            console.print(Text(f"{name}: {alert_id} {state}"), highlight=False)
    if not recorded:
        raise typer.Exit(1)

"""``spendgate spend``: spend reports from the ledger's rollups."""

from __future__ import annotations

import csv
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import orjson
import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.cli._database import DatabaseUrlOpt, read_database
from spendgate.cli._output import console, fail
from spendgate.core.money import format_usd

__all__ = ["app", "parse_when"]

app = typer.Typer(help="Spend reports.", no_args_is_help=True)

_AGO_RE = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")


def parse_when(text: str, *, now: datetime, tz: str) -> datetime:
    """``30d`` / ``12h`` / ``2w`` / ``90m`` ago, ``now``, or an ISO date or datetime
    (read in ``tz`` when it has no offset)."""
    from spendgate.core.periods import get_timezone

    if text.strip().lower() == "now":
        return now
    match = _AGO_RE.match(text.lower())
    if match:
        n, unit = int(match[1]), match[2]
        return (
            now
            - {
                "m": timedelta(minutes=n),
                "h": timedelta(hours=n),
                "d": timedelta(days=n),
                "w": timedelta(weeks=n),
            }[unit]
        )
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use e.g. 30d, 12h, 2026-11-01 or 2026-11-01T09:00"
        ) from None
    return value.replace(tzinfo=get_timezone(tz)) if value.tzinfo is None else value


def _label(start: datetime, granularity: str) -> str:
    return start.strftime("%Y-%m-%d %H:%M" if granularity == "hour" else "%Y-%m-%d")


@app.command()
def report(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by key, user, team, org, customer, tag, endpoint, mode (batch or realtime), "
            "model, provider, deployment "
            "(repeat or comma-separate). By tag, an event counts under each of its tags; the "
            "total counts it once.",
        ),
    ] = None,
    since: Annotated[str, typer.Option(help="Start: 30d, 12h, 2w ago, or an ISO date/time.")] = "30d",
    until: Annotated[str, typer.Option(help="End (exclusive): now, or as --since.")] = "now",
    granularity: Annotated[
        str | None,
        typer.Option("--granularity", "-g", help="hour, day, week or month (default: totals only)."),
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA timezone for periods and dates.")] = "UTC",
    as_csv: Annotated[bool, typer.Option("--csv", help="Write CSV to stdout.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Spend, tokens and requests over a time range, e.g. ``--by team --since 30d``."""
    from spendgate.core.periods import get_timezone
    from spendgate.ledger.reports import Report, Totals, spend_report

    if as_csv and as_json:
        fail("choose one of --csv and --json")
    dims = [d.strip() for item in (by or []) for d in item.split(",") if d.strip()]
    try:
        now = datetime.now(UTC)
        start = parse_when(since, now=now, tz=tz)
        end = parse_when(until, now=now, tz=tz)
    except ValueError as exc:
        fail(str(exc))

    async def read(engine: AsyncEngine) -> tuple[Report, Totals]:
        result = await spend_report(
            engine, start=start, end=end, group_by=dims, granularity=granularity, tz=tz
        )
        if "tag" not in dims:
            return result, result.totals
        # Rows count an event under each of its tags; the total counts it once: the same
        # range and periods, not grouped (every event, once).
        whole = await spend_report(engine, start=start, end=end, group_by=[], granularity=granularity, tz=tz)
        return result, whole.totals

    result, totals = read_database(database_url, read)

    if as_json:
        body = {**result.to_dict(), "totals": totals.to_dict()}
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    rows = result.to_dict()["rows"]
    columns = (["period_start"] if granularity else []) + dims
    metrics = [
        "spend",
        "requests",
        "successful_requests",
        "failed_requests",
        "unpriced_requests",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_nanos",
    ]
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns + metrics)
        for row in rows:
            writer.writerow([row[c] if row[c] is not None else "" for c in columns + metrics])
        return
    zone = get_timezone(tz)
    table = Table(
        title="Spend report",
        title_justify="left",
        caption=f"{_label(result.start.astimezone(zone), 'hour')} – "
        f"{_label(result.end.astimezone(zone), 'hour')} {tz}",
    )
    for c in columns:
        table.add_column(c.replace("_", " "), no_wrap=c == "period_start")
    for c in ("spend", "requests", "input tokens", "output tokens"):
        table.add_column(c, justify="right", no_wrap=c == "spend")
    for r in result.rows:
        cells = (
            [_label(r.period.start.astimezone(zone), granularity) if r.period else ""] if granularity else []
        )
        cells += [v if v is not None else "—" for v in r.group.values()]
        t = r.totals
        table.add_row(
            *cells, format_usd(t.cost_nanos), f"{t.requests:,}", f"{t.input_tokens:,}", f"{t.output_tokens:,}"
        )
    t = totals
    pad = [""] * (len(columns) - 1) if columns else []
    table.add_row(
        *(["[bold]total[/]", *pad] if columns else []),
        f"[bold]{format_usd(t.cost_nanos)}[/]",
        f"{t.requests:,}",
        f"{t.input_tokens:,}",
        f"{t.output_tokens:,}",
        end_section=True,
    )
    console.print(table)


@app.command("export")
def export(
    fmt: Annotated[
        str, typer.Option("--format", help="csv (one line per event) or focus (FOCUS 1.2).")
    ] = "csv",
    since: Annotated[str, typer.Option(help="Start: 30d, 12h, 2w ago, or an ISO date/time.")] = "30d",
    until: Annotated[str, typer.Option(help="End (exclusive): now, or as --since.")] = "now",
    tz: Annotated[str, typer.Option("--tz", help="IANA timezone of dates, times and periods.")] = "UTC",
    group_by: Annotated[
        str | None,
        typer.Option("--group-by", help="CSV aggregated from the rollups, e.g. team,model."),
    ] = None,
    granularity: Annotated[
        str, typer.Option("--granularity", "-g", help="Period of grouped rows: hour, day, week or month.")
    ] = "day",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Export spend as CSV or FOCUS 1.2, streamed (constant memory whatever the range)."""
    from spendgate.ledger.exports import export_chunks

    dims = tuple(d.strip() for d in (group_by or "").split(",") if d.strip())
    try:
        now = datetime.now(UTC)
        start = parse_when(since, now=now, tz=tz)
        end = parse_when(until, now=now, tz=tz)
    except ValueError as exc:
        fail(str(exc))
    if end <= start:
        fail("--until must be after --since")

    async def write(engine: AsyncEngine) -> None:
        # Arguments are checked when the stream is made (ValueError: a one-line error),
        # before the output file is created.
        chunks = export_chunks(
            engine, fmt=fmt, start=start, end=end, tz=tz, group_by=dims, granularity=granularity
        )
        sink = open(output, "wb") if output else sys.stdout.buffer
        try:
            async for chunk in chunks:
                sink.write(chunk)
        finally:
            if output:
                sink.close()
            else:
                sink.flush()

    read_database(database_url, write)

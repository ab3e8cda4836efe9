"""``spendgate batches``: what each managed batch cost, who made it, and a poll cycle on demand.

``list`` and ``show`` read the database directly, like ``spendgate spend report``, so an
operator can see a batch's bill (or why it has none yet) without a running gateway: the
``managed_objects`` row is the batch's state, and the ledger events ``batch:<id>`` and
``batch:<id>:unpriced`` are what it was billed. ``poll`` asks the running gateway instead
(``POST /batches/poll``), because only the gateway holds the deployments and the enforcer a
cycle needs; every batch is claimed before it is billed, so an extra cycle never bills twice.

Money is read from the integer nano-USD columns: ``format_usd`` in tables, ``usd_text``
(exact decimal text) beside the integers in JSON. Never a float.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.cli._admin_client import DEFAULT_URL, JsonOpt, KeyOpt, UrlOpt, call, print_json
from spendgate.cli._database import DatabaseUrlOpt, read_database
from spendgate.cli._output import console, fail
from spendgate.core.money import format_usd, usd_text
from spendgate.stores.database.models import ManagedObject, SpendEventRow

__all__ = ["app", "batch_json", "cost_text", "ledger_event_ids"]

app = typer.Typer(
    help="Managed batches: cost, lines, status and creator; run a poll cycle.", no_args_is_help=True
)


def ledger_event_ids(batch_id: str) -> tuple[str, str]:
    """The ids of the ledger events that bill a batch: its priced lines and its unpriced
    lines (each written only when the batch has such lines)."""
    return f"batch:{batch_id}", f"batch:{batch_id}:unpriced"


def cost_text(row: ManagedObject) -> str:
    """A batch's cost for a table: ``stale`` (retired, nothing billed), ``unsettled`` (not
    billed yet), else the exact USD, marked ``+ unpriced`` when some lines had no price
    (their usage is in the ledger, never billed as $0)."""
    if row.stale:
        return "stale"
    if row.settled_at is None or row.cost_nanos is None:
        return "unsettled"
    return format_usd(row.cost_nanos) + (" + unpriced" if row.unpriced else "")


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _short_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _creator(row: ManagedObject) -> str:
    return " / ".join(v or "—" for v in (row.api_key, row.user_id, row.team_id))


def batch_json(row: ManagedObject) -> dict[str, Any]:
    """Everything about one batch row, JSON-safe: money as integer nano-USD plus exact USD
    text, times in ISO 8601 (UTC)."""
    settled = row.settled_at is not None and not row.stale
    return {
        "id": row.id,
        "api": row.api,
        "model_group": row.model_group,
        "endpoint": row.endpoint,
        "status": row.status,
        "requests": {
            "total": row.requests_total,
            "completed": row.requests_completed,
            "failed": row.requests_failed,
        },
        "reserved_nanos": row.reserved_nanos,
        "reserved_usd": usd_text(row.reserved_nanos),
        "settled": settled,
        "stale": row.stale,
        "unpriced": row.unpriced,
        "cost_nanos": row.cost_nanos,
        "cost_usd": usd_text(row.cost_nanos) if row.cost_nanos is not None else None,
        "api_key": row.api_key,
        "user_id": row.user_id,
        "team_id": row.team_id,
        "organization_id": row.organization_id,
        "end_user": row.end_user,
        "tags": list(row.tags or []),
        "deployment_id": row.deployment_id,
        "provider_id": row.provider_id,
        "input_file_id": row.input_file_id,
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "usage": row.usage,
        "created_at": _when(row.created_at),
        "settled_at": _when(row.settled_at),
        "claimed_by": row.claimed_by,
        "claimed_at": _when(row.claimed_at),
    }


def _write_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _list_batches(
    engine: AsyncEngine, *, status: str | None, unsettled: bool, limit: int
) -> list[ManagedObject]:
    # An admin listing over every owner, filtered by status: ManagedObjectRepository has
    # only owner-scoped listings (list_visible), so the query lives here for now.
    stmt = select(ManagedObject).where(ManagedObject.kind == "batch")
    if status is not None:
        stmt = stmt.where(ManagedObject.status == status)
    if unsettled:
        stmt = stmt.where(ManagedObject.settled_at.is_(None), ManagedObject.stale.is_(False))
    stmt = stmt.order_by(ManagedObject.created_at.desc(), ManagedObject.id.desc()).limit(limit)
    async with AsyncSession(engine) as session:
        return list((await session.scalars(stmt)).all())


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option("--status", help="Only batches with this status, e.g. in_progress.")
    ] = None,
    unsettled: Annotated[
        bool, typer.Option("--unsettled", help="Only batches not billed yet (and not stale).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """The newest managed batches: status, lines, reservation, cost and creator."""
    rows = read_database(
        database_url,
        lambda engine: _list_batches(engine, status=status, unsettled=unsettled, limit=limit),
    )
    if as_json:
        _write_json({"batches": [batch_json(row) for row in rows]})
        return
    if not rows:
        console.print("no batches")
        return
    table = Table(title="Batches", title_justify="left", caption="lines: total / ok / failed")
    table.add_column("id", no_wrap=True)
    table.add_column("api")
    table.add_column("model group")
    table.add_column("status")
    table.add_column("lines", justify="right", no_wrap=True)
    table.add_column("reserved", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("creator (key / user / team)")
    table.add_column("created (UTC)", no_wrap=True)
    for row in rows:
        table.add_row(
            row.id,
            row.api,
            row.model_group or "—",
            row.status,
            f"{row.requests_total:,} / {row.requests_completed:,} / {row.requests_failed:,}",
            format_usd(row.reserved_nanos),
            cost_text(row),
            _creator(row),
            _short_time(row.created_at),
        )
    console.print(table)


async def _one_batch(engine: AsyncEngine, batch_id: str) -> tuple[ManagedObject | None, list[SpendEventRow]]:
    async with AsyncSession(engine) as session:
        row = await session.get(ManagedObject, batch_id)
        if row is None or row.kind != "batch":
            return None, []
        stmt = (
            select(SpendEventRow)
            .where(SpendEventRow.event_id.in_(ledger_event_ids(batch_id)))
            .order_by(SpendEventRow.event_id, SpendEventRow.occurred_at)
        )
        return row, list((await session.scalars(stmt)).all())


def _event_json(event: SpendEventRow) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "occurred_at": _when(event.occurred_at),
        "status": event.status,
        "unpriced": event.unpriced,
        "cost_nanos": event.cost_nanos,
        "cost_usd": usd_text(event.cost_nanos),
    }


@app.command()
def show(
    batch_id: Annotated[str, typer.Argument(metavar="ID", help="The batch id (batch_sg… or msgbatch_sg…).")],
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Everything about one batch, and the ledger events that bill it. Exit 1 if unknown."""
    row, events = read_database(database_url, lambda engine: _one_batch(engine, batch_id))
    if row is None:
        fail(f"no batch {batch_id!r} in this database", code=1)
    data = batch_json(row)
    data["ledger_events"] = [_event_json(e) for e in events]
    if as_json:
        _write_json(data)
        return
    table = Table(title=f"Batch {row.id}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    fields: list[tuple[str, str | None]] = [
        ("api", row.api),
        ("model group", row.model_group),
        ("endpoint", row.endpoint),
        ("status", row.status),
        (
            "lines",
            f"{row.requests_total:,} total / {row.requests_completed:,} ok / {row.requests_failed:,} failed",
        ),
        ("reserved", format_usd(row.reserved_nanos)),
        ("cost", cost_text(row)),
        ("key", row.api_key),
        ("user", row.user_id),
        ("team", row.team_id),
        ("organization", row.organization_id),
        ("end user", row.end_user),
        ("tags", ", ".join(row.tags or []) or None),
        ("deployment", row.deployment_id),
        ("provider id", row.provider_id),
        ("input file", row.input_file_id),
        ("output file", row.output_file_id),
        ("error file", row.error_file_id),
        ("usage", orjson.dumps(row.usage, option=orjson.OPT_SORT_KEYS).decode() if row.usage else None),
        ("created", _when(row.created_at)),
        ("settled", _when(row.settled_at)),
        ("claimed by", row.claimed_by),
    ]
    for name, value in fields:
        table.add_row(name, value if value is not None else "—")
    console.print(table)
    if not events:
        console.print("ledger: no events" + (" yet" if row.settled_at is None else ""), highlight=False)
        return
    ledger = Table(title="Ledger events", title_justify="left")
    ledger.add_column("event id", no_wrap=True)
    ledger.add_column("occurred (UTC)", no_wrap=True)
    ledger.add_column("status")
    ledger.add_column("cost", justify="right", no_wrap=True)
    for event in events:
        ledger.add_row(
            event.event_id,
            _short_time(event.occurred_at),
            event.status,
            "unpriced" if event.unpriced else format_usd(event.cost_nanos),
        )
    console.print(ledger)


@app.command()
def poll(url: UrlOpt = DEFAULT_URL, master_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Run one batch-cost cycle now on the running gateway (master key).

    The batches their providers have finished are billed; safe beside the gateway's own
    cycles, since every batch is claimed before it is billed.
    """
    data = call(url, master_key, "POST", "/batches/poll")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), int) for k in ("seen", "settled", "stale", "errors")
    ):
        fail(f"POST /batches/poll: unexpected answer {str(data)[:200]!r}", code=1)
    if as_json:
        print_json(data)
        return
    console.print(
        f"batch-cost cycle: seen {data['seen']}, settled {data['settled']}, "
        f"stale {data['stale']}, errors {data['errors']}",
        highlight=False,
    )
    if data["errors"]:
        console.print(
            "[yellow]some batches failed this cycle; they are retried next cycle (see the gateway log)[/]"
        )

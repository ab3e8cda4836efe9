"""``spendgate cost``: price one call from token counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from spendgate.cli._output import console, fail
from spendgate.core.money import format_usd
from spendgate.core.pricing.breakdown import ITEMS
from spendgate.core.usage.model import Usage
from spendgate.errors import SpendgateError

__all__ = ["register"]


def cost(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. gpt-4o or azure/gpt-4o.")],
    input_tokens: Annotated[
        int, typer.Option("--input", "-i", min=0, help="Prompt tokens (incl. cached).")
    ] = 0,
    output_tokens: Annotated[int, typer.Option("--output", "-o", min=0, help="Completion tokens.")] = 0,
    cached: Annotated[int, typer.Option(min=0, help="Of the input, tokens read from cache.")] = 0,
    cache_write: Annotated[int, typer.Option(min=0, help="Of the input, tokens written to cache.")] = 0,
    cache_write_1h: Annotated[int, typer.Option(min=0, help="Of the cache writes, 1-hour TTL.")] = 0,
    reasoning: Annotated[int, typer.Option(min=0, help="Of the output, reasoning tokens.")] = 0,
    images: Annotated[int, typer.Option(min=0, help="Images generated.")] = 0,
    seconds: Annotated[float, typer.Option(min=0, help="Seconds of audio or video.")] = 0,
    characters: Annotated[int, typer.Option(min=0, help="Input characters (speech).")] = 0,
    web_searches: Annotated[int, typer.Option(min=0, help="Web-search calls.")] = 0,
    provider: Annotated[str | None, typer.Option(help="Provider that served the call.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Price at batch rates.")] = False,
    tier: Annotated[str | None, typer.Option(help="Service tier: flex or priority.")] = None,
    at: Annotated[str | None, typer.Option(help="When the call happened (ISO 8601); default now.")] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Operator price file (spendgate or LiteLLM format) on top.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Price one call and show the itemized breakdown."""
    from decimal import Decimal

    from spendgate.costs import default_price_book, price

    if batch and tier:
        fail("--batch and --tier are exclusive")
    if tier is not None and tier not in ("flex", "priority"):
        fail(f"--tier must be flex or priority, got {tier!r}")
    try:
        when = datetime.fromisoformat(at) if at else datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    except ValueError:
        fail(f"--at: not an ISO 8601 time: {at!r}")
    try:
        usage = Usage(
            input_tokens=input_tokens,
            cache_read_tokens=cached,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=cache_write_1h,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning,
            images=images,
            seconds=Decimal(repr(seconds)),
            input_characters=characters,
            web_search_requests=web_searches,
        )
        if cached + cache_write > input_tokens:
            fail("--cached plus --cache-write cannot exceed --input (cached tokens are part of the input)")
        if reasoning > output_tokens:
            fail("--reasoning cannot exceed --output (reasoning tokens are part of the output)")
        book = default_price_book()
        if prices is not None:
            from spendgate.catalogue.bundled import load_catalogue_file

            book = book.with_layer(load_catalogue_file(prices))
        result = price(
            model, usage, provider=provider, service_tier="batch" if batch else tier, at=when, book=book
        )
    except (SpendgateError, OSError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        if not result.priced:
            raise typer.Exit(1)
        return
    if not result.priced:
        fail(f"unpriced: {result.unpriced_reason}", code=1)
    table = Table(title=f"{model} → {result.resolved_model}", title_justify="left")
    table.add_column("item")
    table.add_column("USD", justify="right")
    for name in ITEMS:
        amount = getattr(result, name)
        if amount:
            table.add_row(name.replace("_", " "), format_usd(amount))
    table.add_row("[bold]total[/]", f"[bold]{format_usd(result.total)}[/]")
    console.print(table)
    console.print(
        f"prompt {format_usd(result.prompt_cost)} · completion {format_usd(result.completion_cost)}"
        f" · {result.total_nanos} nano-USD · tier {result.service_tier or 'standard'}"
        f" · catalogue {result.catalogue_version} ({result.price_source})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("cost")(cost)

"""``spendgate prices``: look at, compare and import price catalogues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from spendgate.cli._output import console, fail
from spendgate.core.pricing.catalogue import Catalogue
from spendgate.core.pricing.spec import RATE_FIELDS, PriceSpec, Rates, spec_to_dict
from spendgate.errors import SpendgateError

__all__ = ["app"]

app = typer.Typer(help="Show, search, compare and import prices.", no_args_is_help=True)


def _catalogue(path: Path | None) -> Catalogue:
    try:
        if path is None:
            from spendgate.catalogue.bundled import bundled_catalogue

            return bundled_catalogue()
        from spendgate.catalogue.bundled import load_catalogue_file

        return load_catalogue_file(path)
    except (SpendgateError, OSError, ValueError) as exc:
        fail(f"{path}: {exc}")


def _per_million(rate: Any) -> str:
    return f"${rate * 1_000_000:f}".rstrip("0").rstrip(".") if rate is not None else ""


def _rates_rows(rates: Rates) -> list[tuple[str, str]]:
    rows = []
    for name in RATE_FIELDS:
        value = getattr(rates, name)
        if value is None:
            continue
        per_token = not any(s in name for s in ("per_", "per_second"))
        shown = f"{_per_million(value)} / 1M tokens" if per_token else f"${value:f}"
        rows.append((name, shown))
    for size, value in sorted(rates.image_variants.items()):
        rows.append((f"image {size}", f"${value:f} / image"))
    for size, value in sorted(rates.web_search.items()):
        rows.append((f"web search ({size})", f"${value:f} / call"))
    return rows


def _spec_table(title: str, spec: PriceSpec) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("rate")
    table.add_column("price", justify="right")
    for row in _rates_rows(spec.rates):
        table.add_row(*row)
    for t in spec.thresholds:
        for name, shown in _rates_rows(t.rates):
            table.add_row(f"{name} (prompt > {t.above:,})", shown)
    for tier in spec.tiers:
        label = f"{tier.start:,} < prompt ≤ {tier.end:,}" if tier.end else f"prompt > {tier.start:,}"
        for name, shown in _rates_rows(tier.rates):
            table.add_row(f"{name} ({label})", shown)
    for tier_name, sub in sorted(spec.service_tiers.items()):
        for name, shown in _rates_rows(sub.rates):
            table.add_row(f"{name} [{tier_name}]", shown)
    if spec.off_peak is not None:
        for name, shown in _rates_rows(spec.off_peak.rates):
            table.add_row(f"{name} (off-peak)", shown)
    return table


@app.command()
def show(
    model: str,
    provider: Annotated[str | None, typer.Option(help="Provider, when the name is ambiguous.")] = None,
    file: Annotated[Path | None, typer.Option(help="A catalogue file instead of the bundled one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's prices (every spec in its price history)."""
    cat = _catalogue(file)
    entry = cat.find(model, provider)
    if entry is None:
        fail(f"no price is known for {model!r} (try: spendgate prices search {model.split('/')[-1]})", 1)
    if as_json:
        typer.echo(json.dumps({"id": entry.id, "prices": [spec_to_dict(p) for p in entry.prices]}, indent=2))
        return
    console.print(
        f"[bold]{entry.id}[/]  mode {entry.mode} · max input {entry.max_input_tokens or '?'}"
        f" · max output {entry.max_output_tokens or '?'} · catalogue {cat.version}",
        highlight=False,
    )
    for spec in reversed(entry.prices):
        since = spec.effective_from.date().isoformat() if spec.effective_from else "always"
        console.print(_spec_table(f"from {since} ({spec.source or cat.name})", spec))


@app.command()
def search(
    text: str,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    file: Annotated[Path | None, typer.Option(help="A catalogue file instead of the bundled one.")] = None,
) -> None:
    """Find models whose id or alias contains TEXT."""
    cat = _catalogue(file)
    hits = cat.search(text, limit)
    if not hits:
        fail(f"no model matches {text!r}", 1)
    table = Table()
    for col in ("model", "mode", "input / 1M", "output / 1M"):
        table.add_column(col, justify="right" if "/" in col else "left")
    for entry in hits:
        rates = entry.prices[-1].rates if entry.prices else Rates()
        table.add_row(entry.id, entry.mode, _per_million(rates.input), _per_million(rates.output))
    console.print(table)


@app.command()
def diff(file_a: Path, file_b: Path) -> None:
    """Compare two catalogue files: models added, removed and re-priced."""
    a, b = _catalogue(file_a), _catalogue(file_b)
    a_ids = {e.id for e in a}
    b_ids = {e.id for e in b}
    table = Table(title=f"{file_a.name} ({a.version}) → {file_b.name} ({b.version})", title_justify="left")
    for col in ("model", "change", "before", "after"):
        table.add_column(col)
    for model_id in sorted(b_ids - a_ids):
        table.add_row(model_id, "[green]added[/]", "", "")
    for model_id in sorted(a_ids - b_ids):
        table.add_row(model_id, "[red]removed[/]", "", "")
    changed = 0
    for model_id in sorted(a_ids & b_ids):
        ea, eb = a.get(model_id), b.get(model_id)
        assert ea is not None and eb is not None
        da = spec_to_dict(ea.prices[-1]) if ea.prices else {}
        db = spec_to_dict(eb.prices[-1]) if eb.prices else {}
        da.pop("source", None)
        db.pop("source", None)
        if da != db:
            changed += 1
            ra, rb = da.get("rates", {}), db.get("rates", {})
            keys = sorted(k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)) or ["(structure)"]
            for key in keys:
                table.add_row(model_id, key, str(ra.get(key, "")), str(rb.get(key, "")))
    console.print(table)
    console.print(f"{len(b_ids - a_ids)} added · {len(a_ids - b_ids)} removed · {changed} changed")


@app.command("import")
def import_(
    source: Path,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the override file.")],
    version: Annotated[str | None, typer.Option(help="Version to stamp; default the file name.")] = None,
) -> None:
    """Turn a LiteLLM-format price JSON into a spendgate override file."""
    from spendgate.catalogue.litellm_format import litellm_to_catalogue

    try:
        data = json.loads(source.read_text())
        converted = litellm_to_catalogue(
            data, name=f"operator:{source.name}", version=version or source.stem, prices_checked=None
        )
        Catalogue.from_dict(converted)  # validate before writing anything
    except (SpendgateError, OSError, ValueError) as exc:
        fail(f"{source}: {exc}")
    output.write_text(json.dumps(converted, indent=1) + "\n")
    console.print(f"wrote {len(converted['models'])} models to {output}")

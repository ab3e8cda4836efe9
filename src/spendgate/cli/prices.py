"""``spendgate prices``: look at, compare and import price catalogues."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from spendgate.cli._output import console, fail
from spendgate.core.pricing.catalogue import Catalogue
from spendgate.core.pricing.spec import RATE_FIELDS, PriceSpec, Rates, spec_to_dict
from spendgate.core.pricing.table import TOKEN_KINDS, levels, rate_table
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


def _dollars(value: Decimal) -> str:
    """``$2.5``, ``$10``, ``$0`` (no trailing zeros; a $0 rate is ``$0``, not ``$``)."""
    return f"${value.normalize():f}" if value else "$0"


def _per_million(rate: Any) -> str:
    return _dollars(rate * 1_000_000) if rate is not None else ""


def _shown(name: str, value: Decimal) -> str:
    if name in TOKEN_KINDS:
        return f"{_per_million(value)} / 1M tokens"
    unit = "second" if "second" in name else name.rpartition("per_")[2]
    return f"{_dollars(value)} / {unit}"


def _rates_rows(rates: Rates) -> list[tuple[str, str]]:
    rows = [
        (name, _shown(name, value)) for name in RATE_FIELDS if (value := getattr(rates, name)) is not None
    ]
    for size, value in sorted(rates.image_variants.items()):
        rows.append((f"image {size}", f"{_dollars(value)} / image"))
    for size, value in sorted(rates.web_search.items()):
        rows.append((f"web search ({size})", f"{_dollars(value)} / call"))
    return rows


def _prompt(above: int | None, thresholds: tuple[int, ...], inclusive: bool) -> str:
    """The prompt sizes a level covers: "any", "≤ 272,000", "> 272,000" (or ≥ for xAI)."""
    if above is None:
        if not thresholds:
            return "any"
        return f"{'<' if inclusive else '≤'} {thresholds[0]:,}"
    return f"{'≥' if inclusive else '>'} {above:,}"


def _declared_table(title: str, spec: PriceSpec, inclusive: bool) -> Table:
    """Every rate the spec declares, each labelled with its service tier and prompt size."""
    table = Table(title=title, title_justify="left")
    for col in ("rate", "tier", "prompt tokens", "price"):
        table.add_column(col, justify="right" if col == "price" else "left")

    def add(spec_rates: PriceSpec, tier: str) -> None:
        aboves = tuple(sorted({t.above for t in spec.thresholds} | {t.above for t in spec_rates.thresholds}))
        for name, shown in _rates_rows(spec_rates.rates):
            table.add_row(name, tier, _prompt(None, aboves, inclusive), shown)
        for t in spec_rates.thresholds:
            for name, shown in _rates_rows(t.rates):
                table.add_row(name, tier, _prompt(t.above, aboves, inclusive), shown)

    add(spec, "standard")
    for tier in spec.tiers:
        label = f"{tier.start:,} to {tier.end:,}" if tier.end is not None else f"> {tier.start:,}"
        for name, shown in _rates_rows(tier.rates):
            table.add_row(name, "standard", label, shown)
    for tier_name, sub in sorted(spec.service_tiers.items()):
        add(sub, tier_name)
    if spec.off_peak is not None:
        for name, shown in _rates_rows(spec.off_peak.rates):
            table.add_row(name, "off-peak", "any", shown)
    return table


def _billed_kinds(spec: PriceSpec) -> list[str]:
    """Input, output, reasoning and every other token kind the spec declares anywhere."""
    declared = {"input", "output", "reasoning"}
    specs = [spec, *spec.service_tiers.values()]
    for sub in specs:
        for rates in (sub.rates, *(t.rates for t in sub.thresholds), *(t.rates for t in sub.tiers)):
            declared.update(k for k in TOKEN_KINDS if getattr(rates, k) is not None)
    return [k for k in TOKEN_KINDS if k in declared]


def _billed(spec: PriceSpec) -> dict[str, dict[str, dict[str, Decimal]]]:
    """The rate table: tier → prompt size (or range tier) → token kind → rate billed."""
    kinds = _billed_kinds(spec)
    out: dict[str, dict[str, dict[str, Decimal]]] = {}
    for (tier, index, level), cell in rate_table(spec).items():
        thresholds = levels(spec, None if tier == "standard" else tier)
        if index >= 0:
            t = spec.tiers[index]
            where = f"{t.start:,} to {t.end:,}" if t.end is not None else f"> {t.start:,}"
        else:
            where = _prompt(level, thresholds, False)
        out.setdefault(tier, {})[where] = {k: getattr(cell, k) for k in kinds}
    return out


def _billed_table(spec: PriceSpec) -> Table:
    table = Table(
        title="billed per 1M tokens (fallbacks, batch defaults and long-context premiums applied)",
        title_justify="left",
    )
    billed = _billed(spec)
    table.add_column("token kind")
    table.add_column("prompt tokens")
    for tier in billed:
        table.add_column(tier, justify="right")
    wheres = list(dict.fromkeys(w for per_tier in billed.values() for w in per_tier))
    for where in wheres:
        for kind in _billed_kinds(spec):
            cells = [billed[tier].get(where, {}).get(kind) for tier in billed]
            table.add_row(kind, where, *(_per_million(c) for c in cells))
    return table


@app.command()
def show(
    model: str,
    provider: Annotated[str | None, typer.Option(help="Provider, when the name is ambiguous.")] = None,
    file: Annotated[Path | None, typer.Option(help="A catalogue file instead of the bundled one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's prices (every spec in its price history): the rates declared, each
    labelled with its service tier and prompt size, and the token rates billed."""
    cat = _catalogue(file)
    entry = cat.find(model, provider)
    if entry is None:
        fail(f"no price is known for {model!r} (try: spendgate prices search {model.split('/')[-1]})", 1)
    if as_json:
        prices = [
            {
                **spec_to_dict(p),
                "billed": {
                    tier: {where: {k: f"{v:f}" for k, v in kinds.items()} for where, kinds in per.items()}
                    for tier, per in _billed(p).items()
                },
            }
            for p in entry.prices
        ]
        typer.echo(json.dumps({"id": entry.id, "free": entry.free, "prices": prices}, indent=2))
        return
    console.print(
        f"[bold]{entry.id}[/]  mode {entry.mode} · max input {entry.max_input_tokens or '?'}"
        f" · max output {entry.max_output_tokens or '?'} · catalogue {cat.version}"
        + (" · free" if entry.free else ""),
        highlight=False,
    )
    for spec in reversed(entry.prices):
        since = spec.effective_from.date().isoformat() if spec.effective_from else "always"
        console.print(
            _declared_table(f"from {since} ({spec.source or cat.name})", spec, entry.inclusive_thresholds)
        )
        console.print(_billed_table(spec))


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

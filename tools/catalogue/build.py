"""Build ``src/spendgate/catalogue/data/catalogue.json`` and its ``reconciliation.json``
from pinned upstream price data.

Sources (both MIT; attribution goes to ``NOTICE`` and the catalogue's ``sources``), read
by :mod:`.sources` from the installed ``catalogue`` dependency group (or from wheels):

* LiteLLM ``litellm==1.109.1``: ``litellm/model_prices_and_context_window_backup.json``.
  Every priced entry of every provider is imported with
  :mod:`spendgate.catalogue.litellm_format`, after its float artefacts and divided
  per-hour prices are stored as the decimals they stand for. LiteLLM is never imported.
* genai-prices ``genai-prices==0.2.3``: ``genai_prices/data.py`` (see :mod:`.genai`).
  Used for

  a. reconciliation (:mod:`.reconcile`): every LiteLLM entry is compared with the model
     genai-prices prices its name with, rate by rate; each disagreement is decided by a
     rule or a reviewed decision (:mod:`.reviews`), rates only genai-prices has are added,
     and everything is recorded in ``reconciliation.json``;
  b. price history: where genai-prices has dated prices for a model and the price it
     has in force today equals the reconciled one, the earlier prices are added as older
     specs (with ``from`` dates). A model whose prices disagree, or whose history depends
     on the time of day, gets no history;
  c. models LiteLLM lacks, for the providers the catalogue must cover.

The output is deterministic for given inputs and date: models sorted by id, one per line.
``python -m tools.catalogue check`` (and ``tests/tools``) rebuilds both files with the
committed date and fails if they differ from the committed ones.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.catalogue import genai, sources
from tools.catalogue.reconcile import (
    COMPOSED_CHANGE,
    GENAI_SOURCE,
    LITELLM_SOURCE,
    RULES,
    Reconciliation,
    figure_text,
    normalise_litellm,
    reconcile_entries,
)
from tools.catalogue.reviews import REVIEWS, Review

from spendgate.catalogue.litellm_format import BARE_NAME_PROVIDERS, ConversionReport, litellm_to_entries
from spendgate.core.pricing.catalogue import CATALOGUE_FORMAT, Catalogue
from spendgate.core.pricing.spec import entry_from_dict, entry_to_dict

__all__ = ["BuildReport", "Built", "build", "build_catalogue", "dumps", "dumps_catalogue", "main"]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "src" / "spendgate" / "catalogue" / "data" / "catalogue.json"
RECONCILIATION = OUTPUT.with_name("reconciliation.json")
NOTICE = ROOT / "NOTICE"
RECONCILIATION_FORMAT = "spendgate-reconciliation/1"

# genai-prices provider id -> the spendgate providers whose entries it prices. The first
# is where a model LiteLLM lacks is added.
GENAI_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "azure": ("azure",),
    "anthropic": ("anthropic",),
    "google": ("gemini", "vertex_ai"),
    "aws": ("bedrock",),
    "mistral": ("mistral",),
    "cohere": ("cohere",),
    "deepseek": ("deepseek",),
    "x-ai": ("xai",),
    "groq": ("groq",),
    "together": ("together_ai",),
    "fireworks": ("fireworks_ai",),
    "perplexity": ("perplexity",),
    "openrouter": ("openrouter",),
}
REQUIRED_PROVIDERS = tuple(dict.fromkeys(p for ps in GENAI_PROVIDERS.values() for p in ps))
FREE: Mapping[str, Any] = {"input": Decimal(0), "output": Decimal(0)}


@dataclass
class BuildReport:
    litellm: ConversionReport = field(default_factory=ConversionReport)
    history_added: list[str] = field(default_factory=list)
    history_mismatch: list[str] = field(default_factory=list)
    history_time_of_day: list[str] = field(default_factory=list)
    future_prices: list[str] = field(default_factory=list)
    genai_added: Counter[str] = field(default_factory=Counter)
    genai_skipped: list[str] = field(default_factory=list)
    genai_unmapped: Counter[str] = field(default_factory=Counter)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)

    def format(self) -> str:
        lines = ["== LiteLLM import", self.litellm.format()]
        lines.append("== reconciliation (reconciliation.json)")
        lines += [f"  {k}: {v}" for k, v in self.reconciliation.counts().items()]
        unreviewed = [d for d in self.reconciliation.decisions if d.reason == "unreviewed"]
        if unreviewed:
            lines.append(f"unreviewed disagreements, LiteLLM's figure kept: {len(unreviewed)}")
            lines += [
                f"  {d.entry} {d.rate}: litellm {d.litellm}, genai-prices {d.genai} ({d.genai_model})"
                for d in unreviewed
            ]
        lines += [f"price change of review {r} applied to {e}" for e, r in self.reconciliation.price_changes]
        lines.append("== genai-prices")
        lines.append(f"price history added to {len(self.history_added)} models")
        lines += [f"  {m}" for m in self.history_added]
        lines.append(
            f"history not added, today's genai-prices price differs from LiteLLM's: "
            f"{len(self.history_mismatch)} models"
        )
        lines += [f"  {m}" for m in self.history_mismatch]
        if self.history_time_of_day:
            lines.append(
                "history not added, prices depend on the time of day (LiteLLM's off-peak block kept): "
                + ", ".join(self.history_time_of_day)
            )
        if self.future_prices:
            lines.append(f"future-dated prices ignored: {', '.join(self.future_prices)}")
        lines.append(f"models added from genai-prices (LiteLLM lacks them): {sum(self.genai_added.values())}")
        lines += [f"  {p}: {n}" for p, n in sorted(self.genai_added.items())]
        if self.genai_skipped:
            lines.append(f"genai-prices models not added: {len(self.genai_skipped)}")
            lines += [f"  {m}" for m in self.genai_skipped]
        if self.genai_unmapped:
            lines.append("genai-prices price keys not mapped (value dropped; #prices):")
            lines += [f"  {k}: {n}" for k, n in sorted(self.genai_unmapped.items())]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- genai-prices


def _decimals(rates: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: ({s: Decimal(str(x)) for s, x in v.items()} if isinstance(v, Mapping) else Decimal(str(v)))
        for k, v in rates.items()
    }


def same_prices(genai_spec: Mapping[str, Any], litellm_spec: Mapping[str, Any]) -> bool:
    """Do genai-prices and LiteLLM agree on a model's price? Conservative.

    Input and output must be declared by both and equal; every other rate both declare
    must be equal; the long-context thresholds must sit at the same token counts with
    equal rates where both declare them.
    """
    a, b = _decimals(genai_spec.get("rates", {})), _decimals(litellm_spec.get("rates", {}))
    if not all(k in a and k in b for k in ("input", "output")):
        return False
    if any(a[k] != b[k] for k in a.keys() & b.keys()):
        return False
    ta = {t["above"]: _decimals(t["rates"]) for t in genai_spec.get("thresholds", [])}
    tb = {t["above"]: _decimals(t["rates"]) for t in litellm_spec.get("thresholds", [])}
    if ta.keys() != tb.keys():
        return False
    return all(ta[n][k] == tb[n][k] for n in ta for k in ta[n].keys() & tb[n].keys())


def _periods(
    model: Mapping[str, Any], as_of: date, label: str, report: BuildReport
) -> list[tuple[date | None, dict[str, Any]]] | None:
    """A model's prices as ``[(from, prices)]``, oldest first, up to ``as_of``.

    None when they cannot be represented by effective dates (time-of-day prices, dates
    out of order).
    """
    conditional = genai.conditional_prices(model)
    if not conditional:
        return None
    periods: list[tuple[date | None, dict[str, Any]]] = []
    for i, (constraint, prices) in enumerate(conditional):
        if constraint is None:
            if i:
                return None  # an unconditional price after the first shadows the rest
            periods.append((None, prices))
            continue
        if constraint["__type__"] != "StartDateConstraint":
            report.history_time_of_day.append(label)
            return None
        start = constraint["start_date"]
        if periods and periods[-1][0] is not None and start <= periods[-1][0]:
            return None
        if start > as_of:
            report.future_prices.append(f"{label} from {start}")
            continue
        # genai-prices uses the first price before every start date, whatever its own.
        periods.append((None if i == 0 else start, prices))
    return periods


def _spec(
    prices: Mapping[str, Any], start: date | None, report: BuildReport, inclusive: bool = False
) -> dict[str, Any]:
    # genai-prices writes a free model (OpenRouter's ":free" variants) as an empty price set.
    spec: dict[str, Any] = (
        genai.price_to_spec(prices, report.genai_unmapped, inclusive=inclusive)
        if prices
        else {"rates": dict(FREE)}
    )
    if start is not None:
        spec["from"] = start.isoformat()
    spec["source"] = GENAI_SOURCE
    return spec


def add_history(
    entries: list[dict[str, Any]],
    providers: Mapping[str, Mapping[str, Any]],
    as_of: date,
    report: BuildReport,
) -> None:
    """Add genai-prices' earlier prices under LiteLLM's newest one, where they agree on it."""
    for entry in entries:
        genai_provider = _genai_provider(entry["provider"])
        if genai_provider is None or len(entry["prices"]) != 1:
            continue
        model = genai.find_model(providers, genai_provider, entry["model"])
        if model is None:
            continue
        label = f"{entry['id']} (genai-prices {genai_provider}/{model['id']})"
        if len(genai.conditional_prices(model)) < 2:
            continue
        periods = _periods(model, as_of, label, report)
        if periods is None or len(periods) < 2:
            continue
        current_from, current = periods[-1]
        newest = entry["prices"][0]
        inclusive = bool(entry.get("inclusive_thresholds"))
        if not same_prices(genai.price_to_spec(current, inclusive=inclusive), newest):
            report.history_mismatch.append(label)
            continue
        older = [_spec(prices, start, report, inclusive) for start, prices in periods[:-1]]
        if current_from is not None:
            newest = {**newest, "from": current_from.isoformat()}
        entry["prices"] = [*older, newest]
        report.history_added.append(label)


def _genai_provider(provider: str) -> str | None:
    return next((g for g, ps in GENAI_PROVIDERS.items() if provider in ps), None)


def _target_provider(genai_provider: str, model_id: str) -> str:
    """Where a model LiteLLM lacks goes: Google's own models to the Gemini API, the
    partner models Google serves (Claude, Llama, ``*-maas``) to Vertex AI."""
    if genai_provider == "google" and (
        model_id.endswith("-maas") or not re.match(r"(gemini|gemma|imagen|veo|learnlm)", model_id)
    ):
        return "vertex_ai"
    return GENAI_PROVIDERS[genai_provider][0]


def _names(clause: Mapping[str, Any]) -> list[str]:
    """The model names a match clause spells out: its ``equals`` names and the
    ``starts_with`` prefixes that are names themselves (``claude-3-5-haiku``, so the
    dated snapshot ``claude-3-5-haiku-20241022`` resolves to it), not ``gpt-``."""
    kind = clause["__type__"]
    if kind == "ClauseEquals":
        return [clause["equals"]]
    if kind == "ClauseStartsWith":
        prefix = clause["starts_with"]
        return [prefix] if prefix[-1:].isalnum() and re.search(r"[a-z].*-.*[0-9a-z]", prefix) else []
    if kind == "ClauseOr":
        return [n for c in clause["or_"] for n in _names(c)]
    return []


def _tier_specs(
    model: Mapping[str, Any], current: Mapping[str, Any], as_of: date, inclusive: bool
) -> dict[str, Any]:
    """Batch / flex / priority specs from genai-prices' price variants (whole price sets)."""
    return {
        tier: genai.price_to_spec({**current, **own}, inclusive=inclusive)
        for tier, own in genai.tier_variants(model, as_of).items()
    }


def add_missing_models(
    entries: list[dict[str, Any]],
    providers: Mapping[str, Mapping[str, Any]],
    as_of: date,
    report: BuildReport,
) -> list[dict[str, Any]]:
    """genai-prices models of the required providers that no LiteLLM entry matches."""
    present: set[tuple[str, str]] = set()
    for existing in entries:
        genai_provider = _genai_provider(existing["provider"])
        if genai_provider is not None:
            model = genai.find_model(providers, genai_provider, existing["model"], fallback=False)
            if model is not None:
                present.add((genai_provider, model["id"]))
    taken = {e["id"].lower() for e in entries} | {a.lower() for e in entries for a in e.get("aliases", [])}
    added = []
    for genai_provider in GENAI_PROVIDERS:
        for model in providers.get(genai_provider, {}).get("models") or []:
            if (genai_provider, model["id"]) in present:
                continue
            provider = _target_provider(genai_provider, model["id"])
            label = f"{genai_provider}/{model['id']}"
            entry_id = f"{provider}/{model['id']}"
            if entry_id.lower() in taken:
                report.genai_skipped.append(f"{label}: id {entry_id} already used")
                continue
            periods = _periods(model, as_of, label, report)
            if not periods:
                report.genai_skipped.append(f"{label}: prices not representable")
                continue
            inclusive = provider == "xai"  # xAI's thresholds apply at >=, as LiteLLM's entries say
            prices = [_spec(p, start, report, inclusive) for start, p in periods]
            if not prices[-1]["rates"]:
                report.genai_skipped.append(f"{label}: no mappable price")
                continue
            if tiers := _tier_specs(model, periods[-1][1], as_of, inclusive):
                prices[-1]["service_tiers"] = tiers
            names = _names(model["match"])
            aliases = [f"{provider}/{n}" for n in names]
            if provider in BARE_NAME_PROVIDERS:  # "grok-4", like the LiteLLM entries of these
                aliases += [n for n in (model["id"], *names) if "/" not in n]
            aliases = [
                a for a in dict.fromkeys(aliases) if a.lower() != entry_id.lower() and a.lower() not in taken
            ]
            entry: dict[str, Any] = {
                "id": entry_id,
                "provider": provider,
                "model": model["id"],
                "mode": "embedding" if "embed" in model["id"].lower() else "chat",
                "aliases": aliases,
                "prices": prices,
            }
            if model.get("context_window"):
                entry["max_input_tokens"] = int(model["context_window"])
            if inclusive:
                entry["inclusive_thresholds"] = True
            if not periods[-1][1]:  # an empty price set is genai-prices' way to say free
                entry["free"] = True
            taken |= {entry_id.lower(), *(a.lower() for a in aliases)}
            added.append(entry)
            report.genai_added[provider] += 1
            report.reconciliation.models_genai_only[provider] += 1
    return entries + added


# ----------------------------------------------------------------------------- catalogue


def source_records(files: sources.SourceFiles) -> list[dict[str, str]]:
    return [
        {
            "name": "litellm",
            "version": sources.LITELLM_VERSION,
            "file": sources.LITELLM_FILE,
            "url": "https://github.com/BerriAI/litellm",
            "license": "MIT",
            "copyright": sources.copyright_line(files.litellm_license),
        },
        {
            "name": "genai-prices",
            "version": sources.GENAI_PRICES_VERSION,
            "file": sources.GENAI_FILE,
            "url": "https://github.com/pydantic/genai-prices",
            "license": "MIT",
            "copyright": sources.copyright_line(files.genai_license),
        },
    ]


def build_catalogue(
    litellm_data: Mapping[str, Any],
    genai_providers: Sequence[Mapping[str, Any]],
    *,
    as_of: date,
    sources: Iterable[Mapping[str, str]] = (),
    report: BuildReport | None = None,
    reviews: Sequence[Review] = REVIEWS,
) -> dict[str, Any]:
    """The catalogue dict: LiteLLM's entries reconciled with genai-prices, genai-prices'
    history and the models LiteLLM lacks. ``report.reconciliation`` records the decisions."""
    report = report if report is not None else BuildReport()
    record = report.reconciliation
    litellm_data, record.normalised = normalise_litellm(litellm_data)
    entries = litellm_to_entries(litellm_data, source=LITELLM_SOURCE, report=report.litellm)
    by_id = {p["id"]: p for p in genai_providers}
    genai_of = {p: g for g, ps in GENAI_PROVIDERS.items() for p in ps}
    reconcile_entries(entries, by_id, genai_of, as_of, record, reviews)
    add_history(entries, by_id, as_of, report)
    entries = add_missing_models(entries, by_id, as_of, report)
    models = sorted(
        (entry_to_dict(entry_from_dict(e, where=f"model {e['id']!r}")) for e in entries),
        key=lambda e: e["id"],
    )
    catalogue = {
        "format": CATALOGUE_FORMAT,
        "version": as_of.strftime("%Y.%m.%d"),
        "prices_checked": as_of.isoformat(),
        "sources": [dict(s) for s in sources],
        "models": models,
    }
    Catalogue.from_dict(catalogue)  # the bundled loader must accept it
    return catalogue


def reconciliation_dict(
    catalogue: Mapping[str, Any], record: Reconciliation, reviews: Sequence[Review] = REVIEWS
) -> dict[str, Any]:
    """``reconciliation.json``: counts, the rules and reviews, then one row per decision."""
    used = set(record.reviews_used) | {review for _, review in record.price_changes}
    return {
        "format": RECONCILIATION_FORMAT,
        "catalogue_version": catalogue["version"],
        "sources": [f"{s['name']}=={s['version']}" for s in catalogue["sources"]],
        "counts": record.counts(),
        "rules": dict(RULES),
        "reviews": [_review_record(r) for r in reviews if r.id in used],
        "disagreements": [
            {
                "entry": d.entry,
                "rate": d.rate,
                "litellm": figure_text(d.litellm),
                "genai_prices": figure_text(d.genai),
                "genai_model": d.genai_model,
                "taken": figure_text(d.taken),
                "from": d.source,
                "reason": d.reason,
            }
            for d in sorted(record.decisions, key=lambda d: (d.entry, d.rate))
        ],
        "added_from_genai_prices": [
            {"entry": entry, "rate": rate, "figure": figure_text(figure), "genai_model": model}
            for entry, rate, model, figure in sorted(record.added)
        ],
        "normalised": [
            {"key": n.key, "field": n.field, "figure": str(n.figure), "taken": figure_text(n.taken)}
            | {"rule": n.rule}
            | ({"note": n.note} if n.note else {})
            for n in sorted(record.normalised, key=lambda n: (n.key, n.field))
        ],
        "models_only_litellm": dict(sorted(record.models_litellm_only.items())),
        "models_only_genai_prices": dict(sorted(record.models_genai_only.items())),
    }


def _review_record(review: Review) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": review.id,
        "entries": review.entries,
        "rates": review.rates,
        "genai_model": review.genai_model,
        "take": review.take,
        "reason": review.reason,
    }
    if review.change is not None:
        record["price_change"] = {
            "from": review.change.start.isoformat(),
            "rates": {k: figure_text(v) for k, v in review.change.rates.items()},
            "source": review.change.url,
            "kept": review.change.keep,
            "composed": COMPOSED_CHANGE,
        }
    return record


def dumps(document: Mapping[str, Any], expand: Iterable[str]) -> str:
    """Deterministic, diff-friendly JSON: one line per header key, one line per item of
    the ``expand`` lists."""

    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lists = set(expand)
    parts = []
    for key, value in document.items():
        if key in lists:
            items = ",\n".join(compact(v) for v in value)
            parts.append(f"{compact(key)}: [\n{items}\n]" if items else f"{compact(key)}: []")
        else:
            parts.append(f"{compact(key)}: {compact(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def dumps_catalogue(catalogue: Mapping[str, Any]) -> str:
    """The catalogue: the header, then one model per line."""
    return dumps(catalogue, ("models",))


def dumps_reconciliation(document: Mapping[str, Any]) -> str:
    return dumps(document, ("disagreements", "added_from_genai_prices", "normalised", "reviews"))


def notice_text(litellm_license: str, genai_license: str) -> str:
    lite, gen = sources.LITELLM_VERSION, sources.GENAI_PRICES_VERSION
    return f"""\
spendgate
=========

spendgate's bundled price catalogue (src/spendgate/catalogue/data/catalogue.json) is
derived from price data of the following projects, used under the MIT License. The
catalogue is built by tools/catalogue from the published wheels named below.

-------------------------------------------------------------------------------
LiteLLM {lite} - https://github.com/BerriAI/litellm
File used: {sources.LITELLM_FILE} (wheel litellm=={lite})
{sources.copyright_line(litellm_license)}
-------------------------------------------------------------------------------

{sources.mit_text(litellm_license)}

-------------------------------------------------------------------------------
genai-prices {gen} - https://github.com/pydantic/genai-prices
File used: {sources.GENAI_FILE} (wheel genai-prices=={gen})
{sources.copyright_line(genai_license)}
-------------------------------------------------------------------------------

{sources.mit_text(genai_license)}
""" + _vendored_notice()


VENDORED_NOTICE = ROOT / "src" / "spendgate" / "ui" / "static" / "vendor" / "NOTICE"
"""The dashboard's vendored front-end files' licences (tools/ui_assets.py records them), kept
beside the files and appended to the repository's NOTICE by this build."""


def _vendored_notice() -> str:
    return "\n" + VENDORED_NOTICE.read_text(encoding="utf-8") if VENDORED_NOTICE.exists() else ""


@dataclass(frozen=True)
class Built:
    """The three files a build writes, as text, and what it found."""

    catalogue: str
    reconciliation: str
    notice: str
    report: BuildReport
    models: int

    def outputs(self, catalogue: Path, reconciliation: Path, notice: Path) -> list[tuple[Path, str]]:
        return [(catalogue, self.catalogue), (reconciliation, self.reconciliation), (notice, self.notice)]


def build(files: sources.SourceFiles, as_of: date) -> Built:
    """Build every output from the source files, for the prices-checked date ``as_of``."""
    report = BuildReport()
    catalogue = build_catalogue(
        json.loads(files.litellm_json, parse_float=Decimal),
        genai.load_providers(files.genai_data),
        as_of=as_of,
        sources=source_records(files),
        report=report,
    )
    return Built(
        catalogue=dumps_catalogue(catalogue),
        reconciliation=dumps_reconciliation(reconciliation_dict(catalogue, report.reconciliation)),
        notice=notice_text(files.litellm_license, files.genai_license),
        report=report,
        models=len(catalogue["models"]),
    )


def committed_date(path: Path = OUTPUT) -> date:
    """The prices-checked date of the committed catalogue (what a check rebuilds with)."""
    match = re.search(r'^"prices_checked": "([0-9-]+)"', path.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{path}: no prices_checked date")
    return date.fromisoformat(match[1])


def _provider_counts(models: Iterable[Mapping[str, Any]]) -> str:
    counts = Counter(m["provider"] for m in models)
    required = [f"  {p}: {counts.get(p, 0)}" for p in REQUIRED_PROVIDERS]
    others = sum(n for p, n in counts.items() if p not in REQUIRED_PROVIDERS)
    kinds = len([p for p in counts if p not in REQUIRED_PROVIDERS])
    return "\n".join(["entries per required provider:", *required, f"  other ({kinds} providers): {others}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.catalogue", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="rebuild the bundled catalogue, its reconciliation and NOTICE")
    check_cmd = sub.add_parser("check", help="fail if the committed files differ from a rebuild")
    for cmd in (build_cmd, check_cmd):
        cmd.add_argument("--litellm-wheel", type=Path, help="read litellm from this wheel, not installed")
        cmd.add_argument("--genai-wheel", type=Path, help="read genai-prices from this wheel")
    build_cmd.add_argument("--date", type=date.fromisoformat, help="prices-checked date (default: today)")
    build_cmd.add_argument("--output", type=Path, default=OUTPUT)
    build_cmd.add_argument("--reconciliation", type=Path, default=RECONCILIATION)
    build_cmd.add_argument("--notice", type=Path, default=NOTICE)
    args = parser.parse_args(argv)

    if bool(args.litellm_wheel) != bool(args.genai_wheel):
        parser.error("give both --litellm-wheel and --genai-wheel, or neither")
    try:
        files = (
            sources.from_wheels(args.litellm_wheel, args.genai_wheel)
            if args.litellm_wheel
            else sources.from_installed()
        )
    except sources.SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "check":
        built = build(files, committed_date())
        stale = [
            str(path.relative_to(ROOT))
            for path, text in built.outputs(OUTPUT, RECONCILIATION, NOTICE)
            if not path.exists() or path.read_text(encoding="utf-8") != text
        ]
        if stale:
            print(f"out of date (run `make catalogue`): {', '.join(stale)}", file=sys.stderr)
            return 1
        print("catalogue, reconciliation and NOTICE match a rebuild")
        return 0

    built = build(files, args.date or datetime.now(UTC).date())
    for path, text in built.outputs(args.output, args.reconciliation, args.notice):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(built.report.format())
    print(_provider_counts(json.loads(built.catalogue)["models"]))
    print(f"wrote {built.models} models ({len(built.catalogue.encode()):,} bytes) to {args.output}")
    print(f"wrote {args.reconciliation} and {args.notice}")
    return 0

"""Build ``src/spendgate/catalogue/data/catalogue.json`` from pinned upstream price data.

Sources (both MIT; attribution goes to ``NOTICE`` and the catalogue's ``sources``):

* LiteLLM ``litellm==1.109.1``: ``litellm/model_prices_and_context_window_backup.json``
  read straight out of the wheel. Every priced entry of every provider is imported with
  :mod:`spendgate.catalogue.litellm_format`. LiteLLM is never imported.
* genai-prices ``genai-prices==0.2.3``: ``genai_prices/data.py`` read out of the wheel
  (see :mod:`tools.catalogue.genai`). Used for

  a. price history: where genai-prices has dated prices for a model and the price it
     has in force today equals LiteLLM's, the earlier prices are added as older specs
     (with ``from`` dates). The newest spec stays LiteLLM's. A model whose prices
     disagree, or whose history depends on the time of day, gets no history;
  b. models LiteLLM lacks, for the providers the catalogue must cover.

The wheels are fetched at build time only, with ``pip download --no-deps`` into a cache
directory. The output is deterministic for given inputs and date: models sorted by id,
one per line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.catalogue import genai

from spendgate.catalogue.litellm_format import BARE_NAME_PROVIDERS, ConversionReport, litellm_to_entries
from spendgate.core.pricing.catalogue import CATALOGUE_FORMAT, Catalogue
from spendgate.core.pricing.spec import entry_from_dict, entry_to_dict

__all__ = ["BuildReport", "build_catalogue", "dumps_catalogue", "main"]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "src" / "spendgate" / "catalogue" / "data" / "catalogue.json"
NOTICE = ROOT / "NOTICE"

LITELLM_VERSION = "1.109.1"
GENAI_PRICES_VERSION = "0.2.3"
# Published with malicious code; never fetch them, whatever the pin says.
COMPROMISED_LITELLM = frozenset({"1.82.7", "1.82.8"})
LITELLM_FILE = "litellm/model_prices_and_context_window_backup.json"
GENAI_FILE = "genai_prices/data.py"

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
_GENAI_TIERS: Mapping[tuple[str, str], str] = {
    ("processing", "batch"): "batch",
    ("service_tier", "flex"): "flex",
    ("service_tier", "priority"): "priority",
}
FREE: Mapping[str, Any] = {"input": Decimal(0), "output": Decimal(0)}
LITELLM_SOURCE = "litellm"
GENAI_SOURCE = "genai-prices"


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

    def format(self) -> str:
        lines = ["== LiteLLM import", self.litellm.format()]
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


# ----------------------------------------------------------------------------- sources


def _pip() -> list[str]:
    """A pip to download with: this interpreter's, the project's bootstrap one, or PATH's."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "pip"]
    for candidate in (ROOT / ".tools" / "bin" / "pip", shutil.which("pip3"), shutil.which("pip")):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    raise SystemExit("no pip found to download the source wheels with (pass --litellm-wheel/--genai-wheel)")


def fetch_wheels(cache: Path) -> tuple[Path, Path]:
    """The two pinned wheels, downloaded into ``cache`` unless already there."""
    if LITELLM_VERSION in COMPROMISED_LITELLM:
        raise SystemExit(f"litellm {LITELLM_VERSION} is a compromised release; refusing to fetch it")
    cache.mkdir(parents=True, exist_ok=True)

    def found() -> tuple[Path | None, Path | None]:
        lite = sorted(cache.glob(f"litellm-{LITELLM_VERSION}-*.whl"))
        gen = sorted(cache.glob(f"genai_prices-{GENAI_PRICES_VERSION}-*.whl"))
        return (lite[0] if lite else None), (gen[0] if gen else None)

    lite, gen = found()
    if lite is None or gen is None:
        command = [
            *_pip(),
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(cache),
            f"litellm=={LITELLM_VERSION}",
            f"genai-prices=={GENAI_PRICES_VERSION}",
        ]
        print("$", " ".join(command), file=sys.stderr)
        subprocess.run(command, check=True)
        lite, gen = found()
    if lite is None or gen is None:
        raise SystemExit(f"the wheels were not downloaded into {cache}")
    return lite, gen


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def read_license(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if re.search(r"\.dist-info/(licenses/)?LICEN[CS]E", n)]
        if not names:
            raise SystemExit(f"{wheel.name}: no license file in the wheel")
        return archive.read(sorted(names)[0]).decode()


def mit_text(license_text: str) -> str:
    """The MIT license of a license file (LiteLLM's starts with a note on enterprise/)."""
    lines = license_text.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^(The )?MIT License", line.strip())), 0)
    return "\n".join(lines[start:]).strip()


def copyright_line(license_text: str) -> str:
    match = re.search(r"^Copyright .*$", license_text, re.MULTILINE)
    if match is None:
        raise SystemExit("no copyright line in a source license")
    return match.group(0).strip()


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


def _spec(prices: Mapping[str, Any], start: date | None, report: BuildReport) -> dict[str, Any]:
    # genai-prices writes a free model (OpenRouter's ":free" variants) as an empty price set.
    spec: dict[str, Any] = (
        genai.price_to_spec(prices, report.genai_unmapped) if prices else {"rates": dict(FREE)}
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
        if not same_prices(genai.price_to_spec(current), newest):
            report.history_mismatch.append(label)
            continue
        older = [_spec(prices, start, report) for start, prices in periods[:-1]]
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


def _equals_names(clause: Mapping[str, Any]) -> list[str]:
    if clause["__type__"] == "ClauseEquals":
        return [clause["equals"]]
    if clause["__type__"] == "ClauseOr":
        return [c["equals"] for c in clause["or_"] if c["__type__"] == "ClauseEquals"]
    return []


def _tier_specs(model: Mapping[str, Any], current: Mapping[str, Any], as_of: date) -> dict[str, Any]:
    """Batch / flex / priority specs from genai-prices' price variants (whole price sets)."""
    overrides: dict[str, dict[str, Any]] = {}
    for when, constraint, prices in genai.price_variants(model):
        if len(when) != 1:
            continue
        ((key, value),) = when.items()
        tier = _GENAI_TIERS.get((key, value))
        if tier is None or not prices:
            continue
        if constraint is not None and (
            constraint["__type__"] != "StartDateConstraint" or constraint["start_date"] > as_of
        ):
            continue
        for price_key, price in prices.items():
            overrides.setdefault(tier, {}).setdefault(price_key, price)  # first variant wins
    return {tier: genai.price_to_spec({**current, **over}) for tier, over in sorted(overrides.items())}


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
            prices = [_spec(p, start, report) for start, p in periods]
            if not prices[-1]["rates"]:
                report.genai_skipped.append(f"{label}: no mappable price")
                continue
            if tiers := _tier_specs(model, periods[-1][1], as_of):
                prices[-1]["service_tiers"] = tiers
            names = _equals_names(model["match"])
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
            if provider == "xai":
                entry["inclusive_thresholds"] = True
            taken |= {entry_id.lower(), *(a.lower() for a in aliases)}
            added.append(entry)
            report.genai_added[provider] += 1
    return entries + added


# ----------------------------------------------------------------------------- catalogue


def sources(litellm_license: str, genai_license: str) -> list[dict[str, str]]:
    return [
        {
            "name": "litellm",
            "version": LITELLM_VERSION,
            "file": LITELLM_FILE,
            "url": "https://github.com/BerriAI/litellm",
            "license": "MIT",
            "copyright": copyright_line(litellm_license),
        },
        {
            "name": "genai-prices",
            "version": GENAI_PRICES_VERSION,
            "file": GENAI_FILE,
            "url": "https://github.com/pydantic/genai-prices",
            "license": "MIT",
            "copyright": copyright_line(genai_license),
        },
    ]


def build_catalogue(
    litellm_data: Mapping[str, Any],
    genai_providers: Sequence[Mapping[str, Any]],
    *,
    as_of: date,
    sources: Iterable[Mapping[str, str]] = (),
    report: BuildReport | None = None,
) -> dict[str, Any]:
    """The catalogue dict: LiteLLM's entries, genai-prices' history and missing models."""
    report = report if report is not None else BuildReport()
    entries = litellm_to_entries(litellm_data, source=LITELLM_SOURCE, report=report.litellm)
    by_id = {p["id"]: p for p in genai_providers}
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


def dumps_catalogue(catalogue: Mapping[str, Any]) -> str:
    """Deterministic, diff-friendly JSON: the header, then one model per line."""

    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lines = ["{"]
    lines += [f"{compact(k)}: {compact(v)}," for k, v in catalogue.items() if k != "models"]
    lines.append('"models": [')
    lines.append(",\n".join(compact(m) for m in catalogue["models"]))
    lines.append("]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def notice_text(litellm_license: str, genai_license: str) -> str:
    return f"""\
spendgate
=========

spendgate's bundled price catalogue (src/spendgate/catalogue/data/catalogue.json) is
derived from price data of the following projects, used under the MIT License. The
catalogue is built by tools/catalogue from the published wheels named below.

-------------------------------------------------------------------------------
LiteLLM {LITELLM_VERSION} - https://github.com/BerriAI/litellm
File used: {LITELLM_FILE} (wheel litellm=={LITELLM_VERSION})
{copyright_line(litellm_license)}
-------------------------------------------------------------------------------

{mit_text(litellm_license)}

-------------------------------------------------------------------------------
genai-prices {GENAI_PRICES_VERSION} - https://github.com/pydantic/genai-prices
File used: {GENAI_FILE} (wheel genai-prices=={GENAI_PRICES_VERSION})
{copyright_line(genai_license)}
-------------------------------------------------------------------------------

{mit_text(genai_license)}
"""


def _provider_counts(models: Iterable[Mapping[str, Any]]) -> str:
    counts = Counter(m["provider"] for m in models)
    required = [f"  {p}: {counts.get(p, 0)}" for p in REQUIRED_PROVIDERS]
    others = sum(n for p, n in counts.items() if p not in REQUIRED_PROVIDERS)
    kinds = len([p for p in counts if p not in REQUIRED_PROVIDERS])
    return "\n".join(["entries per required provider:", *required, f"  other ({kinds} providers): {others}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.catalogue", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="rebuild the bundled catalogue and NOTICE")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spendgate-catalogue"
    build.add_argument("--cache-dir", type=Path, default=default_cache, help="where the wheels are kept")
    build.add_argument("--litellm-wheel", type=Path, help="use this litellm wheel, no download")
    build.add_argument("--genai-wheel", type=Path, help="use this genai-prices wheel, no download")
    build.add_argument("--date", type=date.fromisoformat, help="prices-checked date (default: today, UTC)")
    build.add_argument("--output", type=Path, default=OUTPUT)
    build.add_argument("--notice", type=Path, default=NOTICE)
    args = parser.parse_args(argv)

    if args.litellm_wheel and args.genai_wheel:
        litellm_wheel, genai_wheel = args.litellm_wheel, args.genai_wheel
    else:
        litellm_wheel, genai_wheel = fetch_wheels(args.cache_dir)
    as_of = args.date or datetime.now(UTC).date()

    litellm_data = json.loads(read_member(litellm_wheel, LITELLM_FILE), parse_float=Decimal)
    genai_providers = genai.load_providers(read_member(genai_wheel, GENAI_FILE).decode())
    litellm_license, genai_license = read_license(litellm_wheel), read_license(genai_wheel)

    report = BuildReport()
    catalogue = build_catalogue(
        litellm_data,
        genai_providers,
        as_of=as_of,
        sources=sources(litellm_license, genai_license),
        report=report,
    )
    text = dumps_catalogue(catalogue)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    args.notice.write_text(notice_text(litellm_license, genai_license), encoding="utf-8")

    print(report.format())
    print(_provider_counts(catalogue["models"]))
    print(f"wrote {len(catalogue['models'])} models ({len(text.encode()):,} bytes) to {args.output}")
    print(f"wrote {args.notice}")
    return 0

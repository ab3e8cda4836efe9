"""Every tier rate on every token kind (issue #16, item 3).

Long-context levels × service tiers × token kinds form one table per model. Two checks:

* over the bundled catalogue, every cell of every model: the calculator bills each token
  kind at its cell's rate, and each cell's rate is what the spec's raw rates say, recomputed
  here with fractions (declared rates win; a tier's base rate is composed with the
  long-context premium; reasoning follows the cell's output; batch without batch rates is
  half of the standard cell);
* rates typed in by hand from the providers' published price pages, for a few models.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from functools import cache

import pytest

import spendgate
from spendgate.catalogue.bundled import bundled_catalogue
from spendgate.core.pricing.calculator import _in_off_peak, calculate
from spendgate.core.pricing.spec import ModelEntry, PriceSpec, Rates
from spendgate.core.pricing.table import TOKEN_KINDS, EffectiveRates, levels, rate_table
from spendgate.core.usage.model import Usage

D = Decimal
N = 1000  # tokens of the kind under test

# kind → (usage fields for N tokens of it on top of a prompt of P tokens, breakdown item)
_KIND_USAGE: dict[str, tuple[dict[str, int], str]] = {
    "input": ({}, "input"),
    "output": ({"output_tokens": N}, "output"),
    "cache_read": ({"cache_read_tokens": N}, "cache_read"),
    "cache_write": ({"cache_write_tokens": N}, "cache_write"),
    "cache_write_1h": ({"cache_write_tokens": N, "cache_write_1h_tokens": N}, "cache_write"),
    "reasoning": ({"output_tokens": N, "reasoning_tokens": N}, "reasoning"),
    "input_audio": ({"input_audio_tokens": N}, "input_audio"),
    "cache_read_audio": (
        {"cache_read_tokens": N, "input_audio_tokens": N, "cache_read_audio_tokens": N},
        "cache_read",
    ),
    "input_image": ({"input_image_tokens": N}, "input_image"),
    "input_video": ({"input_video_tokens": N}, "input_video"),
    "output_audio": ({"output_tokens": N, "output_audio_tokens": N}, "output_audio"),
    "output_image": ({"output_tokens": N, "output_image_tokens": N}, "output_image"),
    "output_video": ({"output_tokens": N, "output_video_tokens": N}, "output_video"),
}
assert set(_KIND_USAGE) == set(TOKEN_KINDS)


def _prompt(entry: ModelEntry, spec: PriceSpec, index: int, level: int | None) -> int:
    """A prompt size (≥ N, so every input kind fits in it) that lands in the cell."""
    if index >= 0:
        tier = spec.tiers[index]
        return tier.start + N if tier.end is None or tier.start + N <= tier.end else tier.end
    if level is None:
        return N
    return level + (0 if entry.inclusive_thresholds else 1) + N


_28 = Context(prec=28, rounding=ROUND_HALF_EVEN)


def _decimal(value: Fraction) -> Decimal:
    """The exact rate, or, when it does not terminate, rounded at 28 significant digits as
    the table rounds a composed rate (far below a nano-USD)."""
    return _28.divide(Decimal(value.numerator), Decimal(value.denominator))


def _on_peak(spec: PriceSpec) -> datetime | None:
    """A moment outside the spec's off-peak windows (the table's cells are on-peak)."""
    if spec.off_peak is None:
        return spec.effective_from
    start = spec.effective_from or datetime(2026, 1, 5, tzinfo=UTC)
    for hour in range(24 * 7):
        moment = start + timedelta(hours=hour, minutes=30)
        if not _in_off_peak(spec.off_peak, moment):
            return moment
    raise AssertionError("off-peak all week")


def _usage(kind: str, prompt: int) -> Usage:
    fields, _ = _KIND_USAGE[kind]
    return Usage(input_tokens=prompt).with_(**fields)


# ------------------------------------------------------------------ the rule, with fractions


def _f(value: Decimal | None) -> Fraction | None:
    return None if value is None else Fraction(value)


def _declared_at(spec: PriceSpec, level: int | None, kind: str) -> Fraction | None:
    """The rate ``spec`` declares for ``kind`` at ``level``: the highest threshold at or below
    it that declares one, else the base rate."""
    value = None
    for t in sorted(spec.thresholds, key=lambda t: t.above):
        if level is not None and t.above <= level and getattr(t.rates, kind) is not None:
            value = getattr(t.rates, kind)
    return _f(value if value is not None else getattr(spec.rates, kind))


def _tier_declared(
    sub: PriceSpec, level: int | None, kind: str, std: dict[str, Fraction], std0: dict[str, Fraction]
) -> Fraction | None:
    for t in sorted(sub.thresholds, key=lambda t: t.above, reverse=True):
        if level is not None and t.above <= level and getattr(t.rates, kind) is not None:
            return Fraction(getattr(t.rates, kind))
    base = _f(getattr(sub.rates, kind))
    if base is None or level is None or not std0[kind]:
        return base
    return base * std[kind] / std0[kind]


def _filled(rates: dict[str, Fraction | None]) -> dict[str, Fraction]:
    """The in-cell fallbacks (cache → input, reasoning → output, modality → its side)."""
    inp = rates["input"] or Fraction(0)
    out = rates["output"] or Fraction(0)
    if not out and rates["output_image"] is not None:
        out = rates["output_image"]
    got = dict.fromkeys(TOKEN_KINDS, Fraction(0))
    got["input"], got["output"] = inp, out
    got["cache_read"] = rates["cache_read"] if rates["cache_read"] is not None else inp
    got["cache_write"] = rates["cache_write"] if rates["cache_write"] is not None else inp
    for kind, fallback in (
        ("cache_write_1h", got["cache_write"]),
        ("reasoning", out),
        ("cache_read_audio", got["cache_read"]),
        ("input_audio", inp),
        ("input_image", inp),
        ("input_video", inp),
        ("output_audio", out),
        ("output_image", out),
        ("output_video", out),
    ):
        value = rates[kind]
        got[kind] = value if value is not None else fallback
    return got


def _expected(spec: PriceSpec, tier: str, level: int | None) -> dict[str, Fraction]:
    std_raw = {k: _declared_at(spec, level, k) for k in TOKEN_KINDS}
    std = _filled(std_raw)
    if tier == "standard":
        return std
    std0 = _filled({k: _declared_at(spec, None, k) for k in TOKEN_KINDS})
    sub = spec.service_tiers.get(tier)
    if tier == "batch" and (sub is None or sub.rates.input is None):
        return {k: v / 2 for k, v in std.items()}
    assert sub is not None
    declared = {k: _tier_declared(sub, level, k, std, std0) for k in TOKEN_KINDS}
    raw = {k: declared[k] if declared[k] is not None else std_raw[k] for k in TOKEN_KINDS}
    if tier == "batch":
        inp, out = declared["input"], declared["output"]
        out = out if out is not None else (None if std_raw["output"] is None else std_raw["output"] / 2)
        raw["output"] = out
        for kind in ("cache_read", "cache_write", "input_audio", "input_image", "input_video"):
            raw[kind] = declared[kind] if declared[kind] is not None else inp
        for kind in ("reasoning", "output_audio", "output_video"):
            raw[kind] = declared[kind] if declared[kind] is not None else out
        for kind in ("cache_write_1h", "output_image"):
            std_kind = std_raw[kind]
            raw[kind] = (
                declared[kind] if declared[kind] is not None else (None if std_kind is None else std_kind / 2)
            )
        raw["cache_read_audio"] = declared["cache_read_audio"]
    elif declared["output"] is not None and declared["reasoning"] is None:
        raw["reasoning"] = None  # the tier's output rate covers reasoning
    return _filled(raw)


# ------------------------------------------------------------------ the bundled catalogue


@cache
def _cells() -> tuple[tuple[ModelEntry, PriceSpec, tuple[str, int, int | None], EffectiveRates], ...]:
    out = []
    for entry in bundled_catalogue():
        for spec in entry.prices:
            assert not (spec.tiers and (spec.thresholds or spec.service_tiers)), entry.id
            for key, rates in rate_table(spec).items():
                out.append((entry, spec, key, rates))
    return tuple(out)


def _bad_cells() -> Iterator[str]:
    for entry, spec, (tier, index, level), rates in _cells():
        expected = _expected(spec, tier, level) if index < 0 else None
        prompt = _prompt(entry, spec, index, level)
        for kind in TOKEN_KINDS:
            rate = getattr(rates, kind)
            where = f"{entry.id} [{tier}, range tier {index}, level {level}] {kind}"
            if expected is not None and rate != _decimal(expected[kind]):
                yield f"{where}: table {rate}, expected {_decimal(expected[kind])}"
            b = calculate(
                spec,
                _usage(kind, prompt),
                entry.id,
                None,
                None,
                entry.mode,
                None if tier == "standard" else tier,
                _on_peak(spec),
                entry.inclusive_thresholds,
                None,
                None,
                None,
                True,  # zero rates priced as $0 here: the table, not the unpriced rule, is under test
            )
            _, item = _KIND_USAGE[kind]
            if getattr(b, item) != rate * N and kind != "input":
                yield f"{where}: billed {getattr(b, item)} for {N} tokens at {rate}"
            if kind == "input" and b.input != rate * prompt:
                yield f"{where}: billed {b.input} for {prompt} input tokens at {rate}"


def test_every_cell_of_every_model_bills_every_token_kind_at_its_rate() -> None:
    cells = _cells()
    assert len({entry.id for entry, *_ in cells}) == len(bundled_catalogue())
    long_tiered = [c for c in cells if c[2][0] != "standard" and c[2][2] is not None]
    assert len(long_tiered) > 300  # long-context cells in batch, flex and priority
    bad = list(_bad_cells())
    assert not bad, f"{len(bad)} cells, e.g.:\n" + "\n".join(bad[:25])


def test_levels_are_the_standard_and_the_tiers_thresholds() -> None:
    spec = PriceSpec(
        rates=Rates(input=D("1e-6")),
        thresholds=(),
        service_tiers={"priority": PriceSpec(rates=Rates(input=D("2e-6")))},
    )
    assert levels(spec, None) == () and levels(spec, "priority") == ()
    entry = bundled_catalogue().get("openai/gpt-5.4")
    assert entry is not None
    assert levels(entry.prices[-1], "batch") == (272_000,)
    assert set(rate_table(entry.prices[-1])) == {
        (tier, -1, level) for tier in ("standard", "batch", "flex", "priority") for level in (None, 272_000)
    }


# ------------------------------------------------------------------ published prices, by hand
#
# USD per 1M tokens, typed in from each provider's published price page (named with the
# date of the figures). This machine has no internet: the pages were not re-read for this
# test; the figures are the published ones as of the date given, and public copies of the
# pages of that date agree (tokenmix.ai "OpenAI API Cost 2026", 2026-06-04; deploybase.ai
# "Gemini API Pricing 2026", pricing of March 2026).

PUBLISHED: list[tuple[str, str | None, int, str, str]] = [
    # OpenAI gpt-5.4 — https://openai.com/api/pricing/ (2026-06-04): standard 2.50 / 0.25
    # cached / 15; Batch and Flex half; Priority 5 / 0.50 / 30. Prompts above 272K input
    # tokens: 2x input and 1.5x output for the whole request in standard, batch and flex
    # (gpt-5.4 model page). Reasoning tokens are billed as output.
    ("gpt-5.4", None, 1_000, "input", "2.50"),
    ("gpt-5.4", None, 1_000, "cache_read", "0.25"),
    ("gpt-5.4", None, 1_000, "output", "15"),
    ("gpt-5.4", None, 1_000, "reasoning", "15"),
    ("gpt-5.4", None, 300_000, "input", "5.00"),
    ("gpt-5.4", None, 300_000, "cache_read", "0.50"),
    ("gpt-5.4", None, 300_000, "output", "22.50"),
    ("gpt-5.4", None, 300_000, "reasoning", "22.50"),
    ("gpt-5.4", "batch", 1_000, "input", "1.25"),
    ("gpt-5.4", "batch", 1_000, "output", "7.50"),
    ("gpt-5.4", "batch", 1_000, "reasoning", "7.50"),
    ("gpt-5.4", "batch", 300_000, "input", "2.50"),
    ("gpt-5.4", "batch", 300_000, "output", "11.25"),
    ("gpt-5.4", "batch", 300_000, "reasoning", "11.25"),
    ("gpt-5.4", "flex", 300_000, "input", "2.50"),
    ("gpt-5.4", "flex", 300_000, "reasoning", "11.25"),
    ("gpt-5.4", "priority", 1_000, "input", "5.00"),
    ("gpt-5.4", "priority", 1_000, "cache_read", "0.50"),
    ("gpt-5.4", "priority", 1_000, "output", "30"),
    ("gpt-5.4", "priority", 1_000, "reasoning", "30"),
    # Google Gemini 2.5 Pro — https://ai.google.dev/gemini-api/docs/pricing (March 2026):
    # prompts ≤ 200K: 1.25 in, 10 out (thinking included), 0.125 cached; > 200K: 2.50,
    # 15, 0.25. Batch and Flex 50 %, Priority 1.8x, at both sizes. The catalogue declares
    # no Flex rate above 200K: the table composes it (50 % of the long-context price).
    ("gemini/gemini-2.5-pro", None, 1_000, "input", "1.25"),
    ("gemini/gemini-2.5-pro", None, 1_000, "cache_read", "0.125"),
    ("gemini/gemini-2.5-pro", None, 1_000, "reasoning", "10"),
    ("gemini/gemini-2.5-pro", None, 250_000, "input", "2.50"),
    ("gemini/gemini-2.5-pro", None, 250_000, "cache_read", "0.25"),
    ("gemini/gemini-2.5-pro", None, 250_000, "output", "15"),
    ("gemini/gemini-2.5-pro", None, 250_000, "reasoning", "15"),
    ("gemini/gemini-2.5-pro", "batch", 250_000, "input", "1.25"),
    ("gemini/gemini-2.5-pro", "batch", 250_000, "reasoning", "7.50"),
    ("gemini/gemini-2.5-pro", "flex", 1_000, "input", "0.625"),
    ("gemini/gemini-2.5-pro", "flex", 1_000, "reasoning", "5"),
    ("gemini/gemini-2.5-pro", "flex", 250_000, "input", "1.25"),
    ("gemini/gemini-2.5-pro", "flex", 250_000, "output", "7.50"),
    ("gemini/gemini-2.5-pro", "flex", 250_000, "reasoning", "7.50"),
    ("gemini/gemini-2.5-pro", "priority", 1_000, "input", "2.25"),
    ("gemini/gemini-2.5-pro", "priority", 250_000, "input", "4.50"),
    ("gemini/gemini-2.5-pro", "priority", 250_000, "reasoning", "27"),
    # Anthropic Claude Sonnet 4.5 — https://docs.claude.com/en/docs/about-claude/pricing
    # (2026-06): 3 in, 15 out, 5-minute cache writes 3.75, 1-hour writes 6, cache hits 0.30;
    # the Batch API halves every one of them (batch and caching stack).
    ("claude-sonnet-4-5", None, 1_000, "input", "3"),
    ("claude-sonnet-4-5", None, 1_000, "output", "15"),
    ("claude-sonnet-4-5", None, 1_000, "reasoning", "15"),
    ("claude-sonnet-4-5", None, 1_000, "cache_write", "3.75"),
    ("claude-sonnet-4-5", None, 1_000, "cache_write_1h", "6"),
    ("claude-sonnet-4-5", None, 1_000, "cache_read", "0.30"),
    ("claude-sonnet-4-5", "batch", 1_000, "input", "1.50"),
    ("claude-sonnet-4-5", "batch", 1_000, "reasoning", "7.50"),
    ("claude-sonnet-4-5", "batch", 1_000, "cache_write", "1.875"),
    ("claude-sonnet-4-5", "batch", 1_000, "cache_write_1h", "3"),
    ("claude-sonnet-4-5", "batch", 1_000, "cache_read", "0.15"),
    # OpenAI gpt-realtime — https://openai.com/api/pricing/ (2026-06-04): text 4 in / 0.40
    # cached / 16 out; audio 32 in / 0.40 cached / 64 out; image 5 in.
    ("gpt-realtime", None, 1_000, "input", "4"),
    ("gpt-realtime", None, 1_000, "cache_read", "0.40"),
    ("gpt-realtime", None, 1_000, "output", "16"),
    ("gpt-realtime", None, 1_000, "input_audio", "32"),
    ("gpt-realtime", None, 1_000, "cache_read_audio", "0.40"),
    ("gpt-realtime", None, 1_000, "output_audio", "64"),
    ("gpt-realtime", None, 1_000, "input_image", "5"),
    # OpenAI gpt-image-1 — same page: text 5 in, image 10 in, image 40 out.
    ("gpt-image-1", None, 1_000, "input", "5"),
    ("gpt-image-1", None, 1_000, "input_image", "10"),
    ("gpt-image-1", None, 1_000, "output_image", "40"),
]


@pytest.mark.parametrize(("model", "tier", "prompt", "kind", "per_million"), PUBLISHED)
def test_published_rate_of_each_tier_level_and_kind(
    model: str, tier: str | None, prompt: int, kind: str, per_million: str
) -> None:
    b = spendgate.price(model, _usage(kind, prompt), service_tier=tier)
    _, item = _KIND_USAGE[kind]
    count = prompt if kind == "input" else N
    assert b.priced
    assert getattr(b, item) == D(per_million) * count / 1_000_000

"""What a batch's output lines add up to: :class:`BatchTotals`, the value the batch-cost
poller settles the reservation with and writes the batch's one ledger event from.

It is a value and knows nothing of files or HTTP: :mod:`spendgate.batches.output` builds
it line by line, and the totals of a batch's output file and error file add up with ``+``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from types import MappingProxyType
from typing import Final, Literal

from spendgate.core.money import allocate_nanos, to_nano
from spendgate.core.pricing.breakdown import ITEMS
from spendgate.core.usage.model import Usage

__all__ = ["EXACT", "MAX_MODELS", "MAX_PROBLEMS", "BatchTotals", "LineProblem", "ProblemKind", "split_items"]

MAX_PROBLEMS: Final = 10
"""How many problem lines a :class:`BatchTotals` keeps (all of them are counted)."""
MAX_MODELS: Final = 64
"""How many distinct model names a :class:`BatchTotals` keeps."""

EXACT: Final = Context(prec=100, traps=[Inexact, InvalidOperation, Overflow])
"""Decimal arithmetic for sums of money that must never round (it raises instead)."""


ProblemKind = Literal["invalid", "unpriced"]


@dataclass(frozen=True, slots=True)
class LineProblem:
    """One line that was not billed normally: ``kind`` is ``"invalid"`` or ``"unpriced"``."""

    line: int
    """1-based line number in its file (blank lines counted, so an editor finds it)."""
    kind: ProblemKind
    reason: str
    source: str = ""
    """Which file it is in (the ``source`` the caller named, e.g. ``"output"``)."""


def _no_items() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchTotals:
    """What a batch's output lines add up to. Totals of two files add with ``+``.

    ``cost_nanos`` is **the bill**: the sum of every priced line's ``total_nanos`` (each
    line rounded to nano-USD on its own, as if it were a separate call).

    ``cost_items`` splits ``cost_nanos`` by breakdown item (``input``, ``cache_read``,
    ``output``, ``reasoning`` …; non-zero items only) and adds up to it exactly: each item
    is its exact sum over the lines, rounded so the integers add up, and the difference that
    rounding every line on its own makes (a fraction of a nano-USD per line) is carried by
    the largest item.

    ``usage`` sums every succeeded line, priced or not.
    """

    cost_nanos: int = 0
    cost_items: Mapping[str, int] = field(default_factory=_no_items)
    usage: Usage = field(default_factory=Usage)
    lines_ok: int = 0
    """Lines whose request succeeded (priced or not)."""
    lines_failed: int = 0
    """Lines whose request failed at the provider (cost 0)."""
    lines_invalid: int = 0
    """Lines that could not be read (not JSON, not the provider's shape, no usage)."""
    unpriced_lines: int = 0
    """Succeeded lines that had usage but no price: their cost is not in ``cost_nanos``."""
    unpriced_reason: str | None = None
    """The first unpriced line's reason."""
    models: tuple[str, ...] = ()
    """The models the succeeded lines name, sorted (at most :data:`MAX_MODELS`)."""
    resolved_models: tuple[str, ...] = ()
    """The catalogue entries the priced lines were priced with, sorted."""
    catalogue_versions: tuple[str, ...] = ()
    price_sources: tuple[str, ...] = ()
    problems: tuple[LineProblem, ...] = ()
    """The first :data:`MAX_PROBLEMS` invalid or unpriced lines, in file order."""

    @property
    def unpriced(self) -> bool:
        """True when a succeeded line could not be priced: the bill is incomplete."""
        return self.unpriced_lines > 0

    @property
    def lines(self) -> int:
        """Every non-blank line read."""
        return self.lines_ok + self.lines_failed + self.lines_invalid

    def __add__(self, other: BatchTotals) -> BatchTotals:
        if not isinstance(other, BatchTotals):
            return NotImplemented
        items = dict(self.cost_items)
        for name, nanos in other.cost_items.items():
            items[name] = items.get(name, 0) + nanos
        return BatchTotals(
            cost_nanos=self.cost_nanos + other.cost_nanos,
            cost_items=MappingProxyType({name: items[name] for name in ITEMS if items.get(name)}),
            usage=self.usage + other.usage,
            lines_ok=self.lines_ok + other.lines_ok,
            lines_failed=self.lines_failed + other.lines_failed,
            lines_invalid=self.lines_invalid + other.lines_invalid,
            unpriced_lines=self.unpriced_lines + other.unpriced_lines,
            unpriced_reason=self.unpriced_reason or other.unpriced_reason,
            models=_union(self.models, other.models)[:MAX_MODELS],
            resolved_models=_union(self.resolved_models, other.resolved_models),
            catalogue_versions=_union(self.catalogue_versions, other.catalogue_versions),
            price_sources=_union(self.price_sources, other.price_sources),
            problems=(self.problems + other.problems)[:MAX_PROBLEMS],
        )


def split_items(parts: Sequence[Decimal], total_nanos: int) -> Mapping[str, int]:
    """``total_nanos`` split over the breakdown items whose exact sums are ``parts`` (in
    :data:`~spendgate.core.pricing.breakdown.ITEMS` order): integers that add up to
    ``total_nanos``, each within 1 nano-USD of its exact sum except the largest, which also
    carries ``total_nanos - to_nano(sum(parts))``."""
    exact = Decimal(0)
    for part in parts:
        exact = EXACT.add(exact, part)
    nanos = allocate_nanos(list(parts), to_nano(exact))
    rest = total_nanos - sum(nanos)
    if rest:
        largest = max(range(len(nanos)), key=lambda i: (abs(nanos[i]), -i))
        nanos[largest] += rest
    return MappingProxyType({name: n for name, n in zip(ITEMS, nanos, strict=True) if n})


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({*a, *b}))

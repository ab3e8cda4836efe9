"""The engine of :mod:`spendgate.batches.output`: an output file fed in chunks, priced line
by line, added up exactly, in memory that does not grow with the file.

Per line: split on newlines (a line may span chunks; one longer than ``max_line_bytes`` is
counted invalid without being held whole), parse (orjson), read (:mod:`output_lines`),
price, count. Three things keep it fast without changing a result:

* a memo of (model, usage) → price, so a usage seen again is not priced again; it steps
  aside while it misses (a full memo that saved less than one pricing in eight), since
  hashing and keeping distinct usages costs more than it saves, and is tried again later;
* the usage and breakdown items of lines priced one by one are summed a few hundred lines
  at a time, column by column, under a Decimal context that traps any rounding;
* nothing is built per line beyond what the extractors and the price build.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from decimal import Decimal, localcontext
from operator import attrgetter
from typing import Final

import orjson

from spendgate.batches.output_lines import INVALID, OK, OutputApi, line_reader
from spendgate.batches.output_totals import (
    EXACT,
    MAX_MODELS,
    MAX_PROBLEMS,
    BatchTotals,
    LineProblem,
    ProblemKind,
    split_items,
)
from spendgate.core.pricing.breakdown import ITEMS, CostBreakdown
from spendgate.core.usage.model import Usage

__all__ = ["DEFAULT_MAX_LINE_BYTES", "OutputPricer", "PriceLine"]

PriceLine = Callable[[str, Usage], CostBreakdown]
"""Prices one succeeded line: ``(the model the line names, its usage) -> CostBreakdown``."""

DEFAULT_MAX_LINE_BYTES: Final = 64 * 1024 * 1024
_MEMO_SIZE: Final = 4096
_MEMO_PAUSE: Final = 16 * _MEMO_SIZE  # lines priced one by one before the memo is tried again
_FLUSH_SIZE: Final = 512  # lines whose usage and price are summed column by column at once

_DESCRIPTIVE: Final = ("image_size", "image_quality", "search_context_size")
_SUMMED: Final = tuple(f.name for f in fields(Usage) if f.name not in _DESCRIPTIVE)
# The summed fields first: zip(sums, columns) stops at the shorter, the sums.
_usage_values = attrgetter(*_SUMMED, *_DESCRIPTIVE)
_item_values = attrgetter(*ITEMS)
_add, _multiply = EXACT.add, EXACT.multiply


class _Priced:
    """The price of one distinct (model, usage), and how many lines had it since the last fold."""

    __slots__ = ("items", "lines", "nanos", "reason")

    def __init__(self, nanos: int, items: tuple[Decimal, ...], reason: str | None) -> None:
        self.lines = 1
        self.nanos = nanos
        """``total_nanos`` of one such line (0 when unpriced)."""
        self.items = items
        """One line's breakdown items, exact, in ``ITEMS`` order (empty when unpriced)."""
        self.reason = reason
        """Why it is unpriced; None when priced."""


class OutputPricer:
    """Prices one output file fed in chunks of any size: :meth:`feed` each chunk, then
    :meth:`close` for the totals. :func:`price_output` drives one over a stream.

    A line whose (model, usage) was seen among the last few thousand distinct ones is not
    priced again: its price is taken from a memo, so ``price_line`` must depend on nothing
    else (give it a fixed ``at`` rather than "now"). The memo steps aside while it misses
    (a batch of all-different usages gains nothing from it) and is tried again later;
    ``memoize=False`` prices every line. Results are the same either way.
    """

    def __init__(
        self,
        price_line: PriceLine,
        *,
        api: OutputApi,
        default_model: str | None = None,
        source: str = "",
        memoize: bool = True,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self._price_line = price_line
        self._read = line_reader(api)
        self._default_model = default_model
        self._source = source
        self._memoize = memoize
        self._memo_on = memoize
        self._memo_off_since = 0  # lines priced while the memo was off
        self._max_line = max_line_bytes
        self._memo: dict[tuple[str, tuple[object, ...]], _Priced] = {}
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._skipping = False  # inside a line longer than max_line_bytes
        self._number = 0
        self._closed = False
        self._ok = self._failed = self._invalid = self._unpriced = 0
        self._unpriced_reason: str | None = None
        self._problems: list[LineProblem] = []
        self._cost = 0
        self._items: list[Decimal] = [Decimal(0)] * len(ITEMS)
        self._sums: list[object] = [Decimal(0) if name == "seconds" else 0 for name in _SUMMED]
        self._values: list[tuple[object, ...]] = []  # lines taken, not yet summed (_flush)
        self._parts: list[tuple[Decimal, ...]] = []
        self._descriptive: list[str | None] = [None] * len(_DESCRIPTIVE)
        self._models: set[str] = set()
        self._prices: set[tuple[str | None, str | None, str | None]] = set()

    @property
    def lines_read(self) -> int:
        """Lines read so far (blank ones included)."""
        return self._number

    def feed(self, chunk: bytes) -> None:
        """Read the complete lines in ``chunk`` (with what earlier chunks left pending)."""
        if self._closed:
            raise RuntimeError("this OutputPricer is closed")
        if b"\n" not in chunk:
            if chunk:
                self._hold(chunk)
            return
        lines = chunk.split(b"\n")
        if self._skipping:  # the rest of a line too long to hold
            self._skipping = False
            lines.pop(0)
            self._number += 1
            self._problem(self._number, "invalid", f"line longer than {self._max_line} bytes")
        elif self._pending:
            lines[0] = b"".join((*self._pending, lines[0]))
            self._pending.clear()
            self._pending_size = 0
        rest = lines.pop()
        self._lines(lines)
        if rest:
            self._hold(rest)

    def close(self) -> BatchTotals:
        """Read the last line (one without a final newline) and return the totals."""
        if not self._closed:
            if self._skipping:
                self._skipping = False
                self._number += 1
                self._problem(self._number, "invalid", f"line longer than {self._max_line} bytes")
            elif self._pending:
                last = b"".join(self._pending)
                self._pending.clear()
                self._lines([last])
            self._fold()
            self._flush()
            self._closed = True
        return self._totals()

    # -- the hot path: once per line ---------------------------------------------------------

    def _lines(self, lines: list[bytes]) -> None:
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        read, default_model, memo, max_line = self._read, self._default_model, self._memo, self._max_line
        number, ok = self._number, 0
        if number == 0 and lines and lines[0].startswith(b"\xef\xbb\xbf"):
            lines[0] = lines[0][3:]  # a UTF-8 byte-order mark
        for raw in lines:
            number += 1
            if not raw or raw.isspace():
                continue
            if len(raw) > max_line:
                self._problem(number, "invalid", f"line longer than {max_line} bytes")
                continue
            try:
                parsed = loads(raw)
            except decode_error:
                self._problem(number, "invalid", "not valid JSON")
                continue
            outcome, model, usage = read(parsed, default_model)
            if outcome != OK:
                if outcome == INVALID:
                    self._problem(number, "invalid", model or "unreadable")
                else:
                    self._failed += 1
                continue
            assert model is not None and usage is not None
            ok += 1
            values = _usage_values(usage)
            if self._memo_on and (entry := memo.get((model, values))) is not None:
                entry.lines += 1
                unpriced = entry.reason
            else:
                unpriced = self._price(model, usage, values)
            if unpriced is not None:
                self._problem(number, "unpriced", unpriced)
        self._number = number
        self._ok += ok

    def _price(self, model: str, usage: Usage, values: tuple[object, ...]) -> str | None:
        """Price a line whose (model, usage) is not in the memo; why it is unpriced, if it is."""
        breakdown = self._price_line(model, usage)
        if breakdown.priced:
            nanos, items, reason = breakdown.total_nanos, _item_values(breakdown), None
            self._prices.add((breakdown.resolved_model, breakdown.catalogue_version, breakdown.price_source))
        else:
            nanos, items = 0, ()
            reason = breakdown.unpriced_reason or f"no price is known for model {model!r}"
        if len(self._models) < MAX_MODELS:
            self._models.add(model)
        # The first line with a (model, usage) is priced here, in file order: the place to
        # keep the first image size, quality and search context size, as Usage.__add__ does.
        if usage.image_size or usage.image_quality or usage.search_context_size:
            self._describe(usage)
        if self._memo_on:
            self._memo[(model, values)] = _Priced(nanos, items, reason)
            if len(self._memo) >= _MEMO_SIZE:
                self._fold(adapt=True)
        else:
            self._take(values, nanos, items)
            if self._memoize:
                self._memo_off_since += 1
                if self._memo_off_since >= _MEMO_PAUSE:
                    self._memo_on = True
        return reason

    # -- bookkeeping -------------------------------------------------------------------------

    def _hold(self, piece: bytes) -> None:
        if self._skipping:
            return
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self._max_line:
            self._pending.clear()
            self._pending_size = 0
            self._skipping = True

    def _problem(self, number: int, kind: ProblemKind, reason: str) -> None:
        if kind == "invalid":
            self._invalid += 1
        else:
            self._unpriced += 1
            if self._unpriced_reason is None:
                self._unpriced_reason = reason
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(LineProblem(number, kind, reason, self._source))

    def _take(self, values: tuple[object, ...], nanos: int, items: tuple[Decimal, ...]) -> None:
        """Count one line of usage ``values`` priced ``nanos`` with breakdown ``items``."""
        self._cost += nanos
        self._values.append(values)
        if items:
            self._parts.append(items)
        if len(self._values) >= _FLUSH_SIZE:
            self._flush()

    def _flush(self) -> None:
        """Add the lines taken to the sums, column by column (exactly: ``EXACT`` traps rounding)."""
        with localcontext(EXACT):
            if self._values:  # zip stops at the shorter: the summed fields, not the descriptive ones
                columns = zip(self._sums, zip(*self._values, strict=True), strict=False)
                self._sums = [sum(column, total) for total, column in columns]  # type: ignore[call-overload]
            if self._parts:
                items = zip(self._items, zip(*self._parts, strict=True), strict=True)
                self._items = [sum(column, total) for total, column in items]
        self._values.clear()
        self._parts.clear()

    def _fold(self, *, adapt: bool = False) -> None:
        """Add what the memo counted to the sums, and empty it. ``adapt``: the memo is full;
        if it saved less than one pricing in eight, price the next lines one by one (a memo
        that misses costs more than it saves) and try it again later."""
        lines = 0
        for (_, values), entry in self._memo.items():
            lines += entry.lines
            if entry.lines == 1:
                self._take(values, entry.nanos, entry.items)
                continue
            summed = zip(self._sums, values[: len(_SUMMED)], strict=True)
            self._sums = [total + value * entry.lines for total, value in summed]  # type: ignore[operator]
            if entry.items:
                items = zip(self._items, entry.items, strict=True)
                self._items = [_add(total, _multiply(item, entry.lines)) for total, item in items]
            self._cost += entry.lines * entry.nanos
        if adapt and lines - len(self._memo) < len(self._memo) // 8:
            self._memo_on = False
            self._memo_off_since = 0
        self._memo.clear()

    def _describe(self, usage: Usage) -> None:
        for i, value in enumerate((usage.image_size, usage.image_quality, usage.search_context_size)):
            if not self._descriptive[i]:
                self._descriptive[i] = value

    def _totals(self) -> BatchTotals:
        values = dict(zip(_SUMMED, self._sums, strict=True))
        values.update(zip(_DESCRIPTIVE, self._descriptive, strict=True))
        return BatchTotals(
            cost_nanos=self._cost,
            cost_items=split_items(self._items, self._cost),
            usage=Usage(**values),  # type: ignore[arg-type]
            lines_ok=self._ok,
            lines_failed=self._failed,
            lines_invalid=self._invalid,
            unpriced_lines=self._unpriced,
            unpriced_reason=self._unpriced_reason,
            models=tuple(sorted(self._models)),
            resolved_models=_names(resolved for resolved, _, _ in self._prices),
            catalogue_versions=_names(version for _, version, _ in self._prices),
            price_sources=_names(source for _, _, source in self._prices),
            problems=tuple(self._problems),
        )


def _names(names: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({name for name in names if name is not None}))

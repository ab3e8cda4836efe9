"""How a report's range is read from the rollups: which grain for which stretch, and
local days read by difference from UTC days (:func:`signed_plan`).

:mod:`spendgate.ledger.reports` builds its statements from these reads, and
:mod:`spendgate.ledger.report_top` reads the same rows for its top values and their rest.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    all_,
    any_,
    bindparam,
    false,
    func,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy import or_ as either
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import Subquery

from spendgate.ledger.rollups import GRAINS
from spendgate.stores.database.models import SpendRollup

__all__ = [
    "REPORT_METRICS",
    "Signed",
    "bucket_conditions",
    "grain_plan",
    "shown",
    "signed_plan",
    "signed_rows",
]

REPORT_METRICS = (
    "cost_nanos",
    "requests",
    "successful_requests",
    "failed_requests",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_hits",
    "saved_nanos",
)
"""The figures of a report row, summed from the rollups' columns of the same names."""


def shown(figures: Iterable[ColumnElement[Any]]) -> ColumnElement[bool]:
    """Some figure is not zero: the condition for a report row to exist (see
    :func:`~spendgate.ledger.reports.spend_report`)."""
    return either(*(figure != 0 for figure in figures))


def grain_plan(boundaries: list[int], base: int) -> list[tuple[int, list[int]]]:
    """How to read ``[boundaries[0], boundaries[-1])`` from the rollups: ``(grain, bucket
    starts)`` for each grain read, the coarsest first.

    A bucket of a grain coarser than ``base`` is read when no boundary falls strictly
    inside it (it lies in one period); what is left is read at ``base``, which divides
    every boundary. The buckets read cover the range, each instant once."""
    todo = [(boundaries[0], boundaries[-1])]
    plan: list[tuple[int, list[int]]] = []
    for grain in sorted((g for g in GRAINS if g > base), reverse=True):
        picked: list[int] = []
        rest: list[tuple[int, int]] = []
        for a, b in todo:
            first, stop = -(-a // grain) * grain, b // grain * grain
            if first >= stop:
                rest.append((a, b))
                continue
            inside = boundaries[bisect_right(boundaries, first) : bisect_left(boundaries, stop)]
            split = sorted({x // grain * grain for x in inside if x % grain})
            skipped = set(split)
            picked += [t for t in range(first, stop, grain) if t not in skipped]
            rest += [(a, first), *((t, t + grain) for t in split), (stop, b)]
        if picked:
            plan.append((grain, picked))
        todo = [(a, b) for a, b in rest if a < b]
    fine = [t for a, b in todo for t in range(a, b, base)]
    return [*plan, (base, fine)] if fine else plan


_DAY = 86400
Signed = dict[tuple[int, int, bool], list[int]]
"""``(grain, shift, both) → bucket starts``: see :func:`signed_plan`."""


def signed_plan(boundaries: list[int], base: int) -> Signed | None:
    """How to read periods of local days (``boundaries``: their starts and the range's
    end, multiples of ``base`` < 1 day) from whole UTC days, by difference.

    Let ``d`` be the UTC midnight nearest a boundary ``x`` and ``c = d - x`` (|c| ≤ 12 h);
    the *piece* of ``x`` is the stretch between ``x`` and ``d``. A period ``[x0, x1)`` is
    ``(x0 → d0) + [d0, d1) + (d1 → x1)``, where ``a → b`` is ``+[a, b)`` if ``a ≤ b``, else
    ``-[b, a)``. So the period is its UTC days ``[d0, d1)``, plus or minus the pieces of
    its two ends, and each piece is added to the period it lies in and subtracted from the
    other one next to it (the one holding ``bucket - c``). An Asia/Kolkata day is then 1
    daily row, 5 hourly and 2 quarter-hour rows per group (the piece from 18:30 UTC to
    midnight) instead of 23 and 4; a Europe/Berlin day 1 daily and 1 or 2 hourly rows
    instead of 24. Integer sums: the same totals, exactly.

    Returns ``(grain, shift, both) → buckets``: a daily bucket ``D`` of the period starting
    at ``x`` counts in the period holding ``D + shift`` (``shift = -c``: ``x`` itself); a
    piece's bucket (``both``) counts in the period holding it, and negated in the one
    holding ``bucket + shift``. ``None`` where that does not hold (a period not longer than
    the pieces of its ends: zone changes that skip most of a day)."""
    nearest = [(x + _DAY // 2 - 1) // _DAY * _DAY for x in boundaries]  # ties: the earlier midnight
    for (x0, x1), (d0, d1) in zip(pairwise(boundaries), pairwise(nearest), strict=True):
        if x1 - x0 <= max(abs(d0 - x0), abs(d1 - x1)):
            return None
    plan: Signed = {}
    for x, d, d_next in zip(boundaries, nearest, [*nearest[1:], nearest[-1]], strict=True):
        shift = x - d
        if d_next > d:  # the period starting at x, when it has UTC days (never the range's end)
            plan.setdefault((_DAY, shift, False), []).extend(range(d, d_next, _DAY))
        if shift:
            for grain, buckets in grain_plan([min(x, d), max(x, d)], base):
                plan.setdefault((grain, shift, True), []).extend(buckets)
    return {key: sorted(buckets) for key, buckets in plan.items()}


def signed_rows(
    plan: Signed,
    conditions: list[ColumnElement[bool]],
    columns: list[str],
    lo: int,
    hi: int,
    postgres: bool,
    name: str = "buckets",
) -> Subquery:
    """The rollup rows of :func:`signed_plan` where ``conditions``, with ``bucket`` moved
    to an instant of the period each counts in (so the period is found from it as from any
    bucket) and the metrics negated where a piece is subtracted; only the parts that count
    in ``[lo, hi)``. Columns: ``bucket``, ``columns`` (those the report groups by) and the
    metrics.

    A piece's rows are summed per value of ``columns`` first (its buckets, of one or two
    grains, all count in the same two periods; a piece lies in one UTC day), and each sum
    is read twice, as it is and moved and negated: an Asia/Kolkata day by customer is 1
    daily row per customer and model, and 2 piece sums per customer, not 1 + 2 × 7 rows.

    ``name`` names the subquery and prefixes its parts' names and bound parameters: one
    statement can hold several such reads (:mod:`spendgate.ledger.report_top`)."""
    table = SpendRollup.__table__
    total = func.spendgate_sum if postgres else func.sum
    metrics = [table.c[m] for m in REPORT_METRICS]
    parts = []
    pieces: dict[int, list[Select[Any]]] = {}
    for n, ((grain, shift, both), buckets) in enumerate(sorted(plan.items())):
        where = [
            table.c.grain == grain,
            *bucket_conditions(grain, buckets, postgres, f"_{name}{n}"),
            *conditions,
        ]
        kept = [table.c[c] for c in columns]
        if both:
            pieces.setdefault(shift, []).append(select(table.c.bucket, *kept, *metrics).where(*where))
        else:
            at = (table.c.bucket + literal_column(str(shift))).label("bucket")
            parts.append(select(at, *kept, *metrics).where(*where))
    for n, (shift, reads) in enumerate(sorted(pieces.items())):
        rows = (
            union_all(*reads).subquery(f"{name}_piece_{n}")
            if len(reads) > 1
            else reads[0].subquery(f"{name}_piece_{n}")
        )
        by = [rows.c[c] for c in columns]
        # Any of a piece's buckets stands for it: the first one (a piece is one UTC day's).
        sums = (
            select(
                func.min(rows.c.bucket).label("bucket"),
                *by,
                *[total(rows.c[m]).label(m) for m in REPORT_METRICS],
            )
            .group_by(rows.c.bucket // literal_column(str(_DAY), BigInteger()), *by)
            .subquery(f"{name}_pieces_{n}")
        )
        # Each piece sum twice: as it is, and moved and negated (integer constants only).
        signs = union_all(
            select(literal_column("0").label("shift"), literal_column("1").label("sign")),
            select(literal_column(str(shift)), literal_column("-1")),
        ).subquery(f"{name}_signs_{n}")
        moved = sums.c.bucket + signs.c.shift
        parts.append(
            select(
                moved.label("bucket"),
                *[sums.c[c] for c in columns],
                *[(sums.c[m] * signs.c.sign).label(m) for m in REPORT_METRICS],
            )
            .select_from(sums.join(signs, true()))
            .where(moved >= lo, moved < hi)
        )
    return union_all(*parts).subquery(name)


def bucket_conditions(
    grain: int, buckets: list[int], postgres: bool, tag: str = ""
) -> list[ColumnElement[bool]]:
    """Conditions on ``bucket`` that keep exactly ``buckets`` (sorted starts of ``grain``):
    their span, less the few it holds that are not wanted, or the list itself when that
    is shorter. Bound parameters only."""
    column = SpendRollup.__table__.c.bucket
    lo, hi = buckets[0], buckets[-1] + grain
    if len(buckets) == (hi - lo) // grain:
        return [column >= lo, column < hi]
    if 2 * len(buckets) <= (hi - lo) // grain:
        return [_bucket_in(buckets, postgres, f"buckets_{grain}{tag}", negate=False)]
    wanted = set(buckets)
    unwanted = [t for t in range(lo, hi, grain) if t not in wanted]
    return [column >= lo, column < hi, _bucket_in(unwanted, postgres, f"skipped_{grain}{tag}", negate=True)]


def _bucket_in(values: list[int], postgres: bool, name: str, *, negate: bool) -> ColumnElement[bool]:
    """``bucket`` is (not) one of ``values``, bound: one array parameter on PostgreSQL."""
    column = SpendRollup.__table__.c.bucket
    if not values:
        return true() if negate else false()
    if postgres:
        array = bindparam(name, values, type_=ARRAY(BigInteger()))
        return column != all_(array) if negate else column == any_(array)
    return column.not_in(values) if negate else column.in_(values)

"""A report's top values: the ``top`` costliest values of its one dimension over the
range keep their rows, every other value is summed per period into one ``other`` row
(:func:`~spendgate.ledger.reports.spend_report`'s ``top``), in SQL, so a month of 2,000
keys by day answers 31 × (top + 1) rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    any_,
    case,
    false,
    func,
    literal_column,
    null,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy import or_ as either
from sqlalchemy.sql.expression import ColumnCollection, Subquery

from spendgate.ledger.report_plan import REPORT_METRICS, shown
from spendgate.stores.database.models import SpendRollup

__all__ = ["MANY_VALUES", "top_by_difference", "top_groups"]

MANY_VALUES = frozenset(("key", "user", "customer", "tag"))
"""Dimensions whose values can number in the thousands (see :func:`top_groups`)."""


def top_groups(
    table: ColumnCollection[str, Any],
    conditions: list[ColumnElement[bool]],
    keys: list[ColumnElement[Any]],
    top: int,
    postgres: bool,
    *,
    many: bool,
) -> Select[Any]:
    """The report's statement with ``top``: the rows of the range (``table``'s rows where
    ``conditions``) grouped by period (``keys`` but the last) and by the dimension (the last
    key) when it is one of the ``top`` costliest values over the range, else summed into one
    row per period (value NULL); then two columns: kept (a top value's row) and the number
    of values in the range (those with a row in the report without ``top``).

    With ``many`` values (keys, users, customers, tags) read as they are: :func:`_top_of_many`,
    never the (period, value) groups (a month of 2,000 keys by day would be 60,000 of them
    first). Otherwise (few values, or signed rows, whose groups exist only where their
    parts do not cancel out) every (period, value) group is summed once, and ranked and
    folded from those groups: one pass over the rows (a month of 200 teams in
    Asia/Kolkata: 265,738 rows, 6,000 groups; of 2,000 keys: 60,000 groups)."""
    if many:
        return _top_of_many(table, conditions, keys, top, postgres)
    total = func.spendgate_sum if postgres else func.sum
    labels = [p.label(f"k{i}") for i, p in enumerate(keys[:-1])]
    sums = [total(table[m]).label(m) for m in REPORT_METRICS]
    grouped = select(*labels, keys[-1].label("v"), *sums).where(*conditions).group_by(*keys)
    inner = grouped.having(shown(sums)).cte("g")
    if postgres:
        inner = inner.prefix_with("MATERIALIZED")  # grouped once, read by both below
    g = inner.c
    ranked = (
        select(g.v, func.count().over().label("n"))  # n: every value, before LIMIT
        .group_by(g.v)
        .order_by(total(g.cost_nanos).desc(), g.v)
        .limit(top)
        .cte("top")
    )
    kept = ranked.c.v.is_not(None)
    periods = [g[label.name] for label in labels]
    folded = [total(g[m]).label(m) for m in REPORT_METRICS]
    return (
        select(
            *periods,
            ranked.c.v.label("value"),
            *folded,
            kept.label("kept"),
            select(func.max(ranked.c.n)).scalar_subquery().label("groups"),
        )
        .select_from(inner.outerjoin(ranked, g.v == ranked.c.v))
        .group_by(*periods, ranked.c.v)
        .having(shown(folded))
        .order_by(*periods, kept.desc(), ranked.c.v)
    )


def _top_of_many(
    table: ColumnCollection[str, Any],
    conditions: list[ColumnElement[bool]],
    keys: list[ColumnElement[Any]],
    top: int,
    postgres: bool,
) -> Select[Any]:
    """:func:`top_groups` for a scope dimension of many values (keys, users, customers,
    tags), without the (period, value) groups. One pass sums the rows per value (to rank),
    per period (every value) and, of the rows without a request (a key's adjustments), per
    period and value; on PostgreSQL in one scan (``GROUPING SETS``). Then the top values'
    rows are read by their ids (``ix_spend_rollups_scope``: a month of the top 50 keys by
    day is 4,500 of 180,000 rows), and each period's rest row is its sum less the top
    values' part.

    A value is ranked when it has a row in the report: it has a request in the range (a
    row of the rollups counts its events' requests, none negative), or its rows without a
    request sum to a figure that is not zero in some period. Over one grain of the table
    the top values' rows are read by index; over a union of grains, PostgreSQL reads the
    union again for them."""
    total = func.spendgate_sum if postgres else func.sum
    periods = keys[:-1]
    labels = [p.label(f"k{i}") for i, p in enumerate(periods)]
    scope_id = table.scope_id
    idle = case((table.requests == literal_column("0"), scope_id))  # NULL: a row of requests
    sums = [total(table[m]).label(m) for m in REPORT_METRICS]
    if postgres:
        part = func.grouping(scope_id, idle)  # 1: a value's sums, 3: a period's, 2: by idle
        sets = func.grouping_sets(tuple_(scope_id), tuple_(*periods), tuple_(*periods, idle))
        every = select(*labels, scope_id.label("v"), idle.label("idle"), *sums, part.label("part"))
        summed = every.where(*conditions).group_by(sets).cte("summed").prefix_with("MATERIALIZED")
    else:
        nulls = [null().label(label.name) for label in labels]
        summed = union_all(
            select(
                *nulls, scope_id.label("v"), null().label("idle"), *sums, literal_column("1").label("part")
            )
            .where(*conditions)
            .group_by(scope_id),
            select(*labels, null().label("v"), null().label("idle"), *sums, literal_column("3").label("part"))
            .where(*conditions)
            .group_by(*periods),
            select(
                *labels, null().label("v"), scope_id.label("idle"), *sums, literal_column("2").label("part")
            )
            .where(*conditions, table.requests == 0)
            .group_by(*periods, scope_id),
        ).cte("summed")
    s = summed.c
    figures = [s[m] for m in REPORT_METRICS]
    value = s.v.collate("C") if postgres else s.v
    idle_values = select(s.idle).where(s.part == 2, s.idle.is_not(None), shown(figures))
    ranked = (
        select(s.v, func.count().over().label("n"))  # n: every value, before LIMIT
        .where(s.part == 1, either(s.requests != 0, s.v.in_(idle_values)))
        .order_by(s.cost_nanos.desc(), value)
        .limit(top)
        .cte("top")
    )
    kept = (
        select(*labels, scope_id.label("v"), *sums)
        .where(*conditions, scope_id.in_(select(ranked.c.v)))
        .group_by(*periods, scope_id)
        .cte("kept")
    )
    k = kept.c
    period_of = [s[label.name] for label in labels]
    parts = union_all(
        select(*period_of, *figures).where(s.part == 3),
        select(*[k[label.name] for label in labels], *[-k[m] for m in REPORT_METRICS]),
    ).subquery("parts")
    p = parts.c
    part_periods = [p[label.name] for label in labels]
    folded = [total(p[m]).label(m) for m in REPORT_METRICS]
    rest = (
        select(
            *[c.label(c.name) for c in part_periods],
            null().label("value"),
            *folded,
            false().label("kept"),
        )
        .group_by(*part_periods)
        .having(shown(folded))
    )
    groups = select(func.max(ranked.c.n)).scalar_subquery()
    kept_rows = select(
        *[k[label.name] for label in labels],
        k.v.label("value"),
        *[k[m] for m in REPORT_METRICS],
        true().label("kept"),
    ).where(shown(k[m] for m in REPORT_METRICS))
    out = union_all(kept_rows, rest).subquery("out")
    o = out.c
    order_value = o.value.collate("C") if postgres else o.value
    return select(
        *[o[label.name] for label in labels],
        o.value,
        *[o[m] for m in REPORT_METRICS],
        o.kept,
        groups.label("groups"),
    ).order_by(*[o[label.name] for label in labels], o.kept.desc(), order_value)


Read = Callable[[list[ColumnElement[bool]], str], Subquery]
"""Signed rollup rows where the conditions, under a name (``report_plan.signed_rows`` bound
to a plan and a range): columns ``bucket``, ``scope_id`` and the figures."""


def top_by_difference(
    per_period: Read,
    over_range: Read,
    period_of: Callable[[ColumnElement[Any]], ColumnElement[Any]],
    scope_type: str,
    every_value: list[list[ColumnElement[bool]]],
    top: int,
    postgres: bool,
) -> Select[Any]:
    """:func:`top_groups` for a scope whose values add up to a sum kept on its own, over
    rows read by difference (local days of a zone off UTC midnight), without reading any
    value's rows per period but the top values'.

    ``per_period`` reads the rows by period, ``over_range`` the range as one period (its
    UTC days and the two end pieces), ``period_of`` maps a read row's ``bucket`` to its
    period, and the rows of ``every_value`` (each a list of conditions) sum, per period, to
    every value's rows: the ``global`` rows for a scope every event has one value of (key,
    user, team, organization, customer: ``''`` for none), plus, for keys, their adjustments
    (``key_adjustment``), which no other scope holds.

    Read per period, a month of 2,000 keys by Asia/Kolkata day is 1.2 million rows (each
    key's daily rows and the pieces between local and UTC midnight, per model); here the
    values are ranked from their sums over the range (its daily rows: 180,000), only the top
    values are read per period (through ``ix_spend_rollups_scope``), and each period's rest
    row is the period's sum less theirs. Exactly :func:`top_groups`'s answer: a value has a
    row in the report when it has a request in the range (then some period has one) or, with
    none, when its rows in some period, only adjustments then, have a figure that is not
    zero; those few values are read per period to find out."""
    total = func.spendgate_sum if postgres else func.sum
    table = SpendRollup.__table__.c
    of_type = table.scope_type == scope_type

    def among(values: Select[Any]) -> ColumnElement[bool]:
        # On PostgreSQL an array of the values, so the rows are read by index, value by value.
        if postgres:
            return table.scope_id == any_(func.array(values.scalar_subquery()))
        return table.scope_id.in_(values)

    def by_period(rows: Subquery, *by: ColumnElement[Any]) -> Select[Any]:
        sums = [total(rows.c[m]).label(m) for m in REPORT_METRICS]
        period = period_of(rows.c.bucket)
        return select(period.label("k0"), *by, *sums).group_by(period, *by)

    ranged = over_range([of_type], "ranged")
    ranks = (
        select(ranged.c.scope_id.label("v"), *[total(ranged.c[m]).label(m) for m in REPORT_METRICS])
        .group_by(ranged.c.scope_id)
        .cte("ranks")
    )
    if postgres:
        ranks = ranks.prefix_with("MATERIALIZED")  # read by the next three
    r = ranks.c
    idle_rows = per_period([of_type, among(select(r.v).where(r.requests == 0))], "idle")
    idle = by_period(idle_rows, idle_rows.c.scope_id.label("v")).subquery("idle_groups")
    shown_idle = select(idle.c.v).where(shown(idle.c[m] for m in REPORT_METRICS))
    value = r.v.collate("C") if postgres else r.v
    ranked = (
        select(r.v, func.count().over().label("n"))  # n: every value, before LIMIT
        .where(either(r.requests != 0, r.v.in_(shown_idle)))
        .order_by(r.cost_nanos.desc(), value)
        .limit(top)
        .cte("top")
    )
    kept_rows = per_period([of_type, among(select(ranked.c.v))], "kept")
    kept = by_period(kept_rows, kept_rows.c.scope_id.label("v")).cte("kept")
    k = kept.c
    wholes = [by_period(per_period(conditions, f"every{i}")) for i, conditions in enumerate(every_value)]
    parts = union_all(*wholes, select(k.k0, *[-k[m] for m in REPORT_METRICS])).subquery("parts")
    p = parts.c
    folded = [total(p[m]).label(m) for m in REPORT_METRICS]
    rest = (
        select(p.k0.label("k0"), null().label("value"), *folded, false().label("kept"))
        .group_by(p.k0)
        .having(shown(folded))
    )
    kept_shown = select(
        k.k0, k.v.label("value"), *[k[m] for m in REPORT_METRICS], true().label("kept")
    ).where(shown(k[m] for m in REPORT_METRICS))
    o = union_all(kept_shown, rest).subquery("out").c
    order_value = o.value.collate("C") if postgres else o.value
    groups = select(func.max(ranked.c.n)).scalar_subquery()
    return select(o.k0, o.value, *[o[m] for m in REPORT_METRICS], o.kept, groups.label("groups")).order_by(
        o.k0, o.kept.desc(), order_value
    )

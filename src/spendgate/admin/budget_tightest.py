"""GET /budget/tightest: the keys nearest their budget limits, among every key the caller
may read.

The dashboard's Overview shows the budgets nearest their limit. Reading one page of
``/key/list`` and sorting it sees only that page's keys, so a deployment with thousands of
keys would be shown the wrong ones. This endpoint reads the windows of **every** visible key
that has a limit (in pages of :data:`_PAGE` keys, each page's windows in one rollup read:
:func:`~spendgate.admin.entity_spend.limited_windows`, the same figures as the key's own
``budget_windows``), ranks each key by its fullest window (spend over the limit the
gateway enforces, a temporary increase included; a zero limit ranks first), and returns the
first ``limit`` keys as ``/key/info`` shows them. The fullest windows of the first ``limit``
keys include the ``limit`` fullest windows of all, so a caller sorting their windows gets
the right ones.

Who sees what follows ``/key/list``: admins every key, others their own and their admin
teams' keys; a key that belongs to no user sees itself.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.entity_spend import WindowSpend, limited_windows
from spendgate.admin.key_rights import key_filter
from spendgate.admin.schemas import BudgetTightestQuery
from spendgate.admin.views import keys_out
from spendgate.entities.codec import decode_limits
from spendgate.entities.keys import KEY_SCOPE, require_key
from spendgate.entities.repository import Page
from spendgate.stores.database.models import VirtualKey

__all__ = ["tightest_budgets"]

_PAGE = 1000
"""Keys read (and their windows summed) at a time."""

_Rank = tuple[bool, Fraction, int, str]
"""(a zero limit, spend over the enforced limit, spend, key id): greater is tighter."""


def _rank(key_id: str, windows: list[WindowSpend]) -> _Rank:
    """A key's fullest window, as a sort key."""
    best: _Rank | None = None
    for w in windows:
        limit = w.effective_max_nanos
        assert limit is not None  # limited_windows keeps only those
        rank = (
            limit <= 0,
            Fraction(w.spend_nanos, limit) if limit > 0 else Fraction(0),
            w.spend_nanos,
            key_id,
        )
        best = rank if best is None or rank > best else best
    assert best is not None
    return best


async def _ranked(ctx: Context, rows: list[VirtualKey]) -> list[tuple[_Rank, VirtualKey]]:
    """Each key of ``rows`` that has a limited budget window, with its rank."""
    repo = ctx.repo
    stored = await repo.windows(KEY_SCOPE.name, [vk.key_id for vk in rows])
    profiles = await repo.budgets([vk.budget_id for vk in rows if vk.budget_id])
    specs = [
        (vk.key_id, decode_limits(vk, profiles.get(vk.budget_id or ""), stored[vk.key_id])) for vk in rows
    ]
    windows = await limited_windows(repo, KEY_SCOPE, specs, ctx.spend_at)
    return [(_rank(vk.key_id, windows[vk.key_id]), vk) for vk in rows if vk.key_id in windows]


async def _visible(ctx: Context) -> AsyncIterator[list[VirtualKey]]:
    """The keys the caller may read that may have a budget window, a page at a time (a
    key of no user: itself)."""
    caller = ctx.caller
    if caller.role is None:
        if caller.key_hash is not None:
            yield [await require_key(ctx.entities, caller.key_hash)]
        return
    where = key_filter(caller, budgeted=True)
    number = 1
    while True:
        total, rows = await ctx.repo.list_keys(where, Page(number, _PAGE))
        if rows:
            yield rows
        if number * _PAGE >= total or not rows:
            return
        number += 1


async def tightest_budgets(ctx: Context, query: BudgetTightestQuery) -> dict[str, Any]:
    top: list[tuple[_Rank, VirtualKey]] = []
    budgeted = 0
    async for rows in _visible(ctx):
        ranked = await _ranked(ctx, rows)
        budgeted += len(ranked)
        top = heapq.nlargest(query.limit, [*top, *ranked], key=lambda pair: pair[0])
    keys = await keys_out(ctx.repo, [vk for _, vk in top], spend=ctx.spend_at)
    return {"keys": keys, "budgeted_keys": budgeted}

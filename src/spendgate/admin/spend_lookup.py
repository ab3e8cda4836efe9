"""What the spend reads look up besides the rollups: keys, team names, the rollup slices of
a :class:`~spendgate.admin.spend_range.DayRange`, and ranking by spend.

Why one module: ``/spend/*``, ``/global/spend*`` and the daily activity endpoints all name
keys by their hash (LiteLLM's ``api_key``; a deleted key by its id, the hash it was first
issued with), name teams by alias, and read rollup slices over a range of local days; each
of those is written here once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.admin.spend_access import SpendAccess
from spendgate.admin.spend_range import DayRange
from spendgate.ledger.spend_reads import Slice, read_slices
from spendgate.stores.database.models import Team, VirtualKey

__all__ = [
    "by_spend",
    "chunks",
    "day_slices",
    "key_name",
    "key_rows",
    "keys_scope",
    "team_names",
]

_CHUNK = 1000
"""Ids per ``IN (...)``: well below every database's bound-parameter limit."""


def chunks(items: Collection[str]) -> Iterable[list[str]]:
    """``items`` sorted, in lists of at most :data:`_CHUNK`."""
    ordered = sorted(items)
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i : i + _CHUNK]


async def key_rows(session: AsyncSession, key_ids: Iterable[str | None]) -> dict[str, VirtualKey]:
    """key_id → the key's row, for the keys that still exist (``None`` and blanks ignored)."""
    out: dict[str, VirtualKey] = {}
    for chunk in chunks({k for k in key_ids if k}):
        for vk in await session.scalars(select(VirtualKey).where(VirtualKey.key_id.in_(chunk))):
            out[vk.key_id] = vk
    return out


def key_name(vk: VirtualKey | None, key_id: str | None) -> str | None:
    """How LiteLLM names a key: its hash; a deleted key: its id (its first hash); no key: None."""
    return vk.token if vk is not None else key_id


async def team_names(
    session: AsyncSession, team_ids: Iterable[str | None], none: str
) -> dict[str | None, str]:
    """team_id → the team's alias (else its id); ``None`` (no team) → ``none``."""
    names: dict[str | None, str] = {None: none}
    for chunk in chunks({t for t in team_ids if t}):
        rows = await session.execute(select(Team.team_id, Team.team_alias).where(Team.team_id.in_(chunk)))
        found = {tid: alias for tid, alias in rows.all()}
        names.update({tid: found.get(tid) or tid for tid in chunk})
    return names


def by_spend(rows: Sequence[dict[str, Any]], nanos: Sequence[int]) -> list[dict[str, Any]]:
    """``rows`` ordered by their spend (``nanos[i]`` is row i's), highest first; ties keep order."""
    order = sorted(range(len(rows)), key=lambda i: -nanos[i])
    return [rows[i] for i in order]


def keys_scope(access: SpendAccess) -> tuple[str, frozenset[str] | None]:
    """Global reads: everything for an admin, else the sum of the caller's keys (exact: every
    event has one key)."""
    return ("global", None) if access.everything else ("key", access.key_ids)


async def day_slices(
    session: AsyncSession,
    days: DayRange,
    scope: str,
    ids: Collection[str] | None,
    *,
    daily: bool = False,
    by_scope: bool = False,
    by_model: bool = False,
) -> list[Slice]:
    """:func:`~spendgate.ledger.spend_reads.read_slices` over the local days of ``days``."""
    return await read_slices(
        session,
        start=days.start,
        end=days.end,
        tz=days.tz,
        scope=scope,
        ids=ids,
        daily=daily,
        by_scope=by_scope,
        by_model=by_model,
    )

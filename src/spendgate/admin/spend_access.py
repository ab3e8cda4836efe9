"""Who may read which spend: the ONE rule every spend, activity and export endpoint applies.

* ``proxy_admin`` and ``proxy_admin_viewer`` (and the master key) read everything;
* an internal user reads their own spend: themselves, the keys they own, and, for each
  team they are an admin of, that team, its keys and its members' spend on its keys;
* a key that belongs to no user reads only its own spend.

A filter that names someone else's key, user or team is a **403**, not an empty answer
(:meth:`SpendAccess.check_key`, :meth:`~SpendAccess.check_user`,
:meth:`~SpendAccess.check_team`); customers, tags and organizations are read by admins only
(:meth:`~SpendAccess.check_admin`). Reads that name nothing are narrowed to what the caller
may see: over the raw events with :meth:`SpendAccess.events_clause`, over the rollups by
reading the key rollups of :attr:`SpendAccess.key_ids` (every event has one key, so their sum
is exact and counts nothing twice).

Keys are named by their stable ``key_id`` here (what the ledger stores);
:func:`resolve_key_ref` turns what a client sends (the raw ``sk-…`` key, its hash, or its id)
into it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select

from spendgate.admin.roles import Caller
from spendgate.core.keys import hash_key
from spendgate.entities.repository import EntityRepository
from spendgate.http.errors import PermissionDenied
from spendgate.stores.database.models import SpendEventRow, VirtualKey

__all__ = ["SpendAccess", "resolve_key_ref", "spend_access"]


@dataclass(frozen=True, slots=True)
class SpendAccess:
    """What one caller may read (module docstring)."""

    everything: bool
    key_ids: frozenset[str] = frozenset()
    """Keys whose spend it may read (empty for an admin: it reads every key)."""
    user_ids: frozenset[str] = frozenset()
    team_ids: frozenset[str] = frozenset()

    def check_key(self, key_id: str | None, param: str = "api_key") -> None:
        """403 unless the caller may read key ``key_id`` (None: nothing named)."""
        if key_id is not None and not self.everything and key_id not in self.key_ids:
            raise PermissionDenied(f"{param}: you may not read this key's spend", param=param)

    def check_user(self, user_id: str | None, param: str = "user_id") -> None:
        """403 unless the caller may read user ``user_id``'s spend."""
        if user_id is not None and not self.everything and user_id not in self.user_ids:
            raise PermissionDenied(f"{param}: you may not read user {user_id!r}'s spend", param=param)

    def check_team(self, team_id: str | None, param: str = "team_id") -> None:
        """403 unless the caller may read team ``team_id``'s spend (an admin of it)."""
        if team_id is not None and not self.everything and team_id not in self.team_ids:
            raise PermissionDenied(f"{param}: you may not read team {team_id!r}'s spend", param=param)

    def check_admin(self, what: str, param: str | None = None) -> None:
        """403 unless the caller reads everything (customers, tags, organizations, global)."""
        if not self.everything:
            raise PermissionDenied(f"only a proxy_admin or proxy_admin_viewer may read {what}", param=param)

    def events_clause(self) -> ColumnElement[bool] | None:
        """The WHERE clause that narrows ``spend_events`` to what the caller may read (None:
        everything). Bound parameters only."""
        if self.everything:
            return None
        parts: list[ColumnElement[bool]] = []
        if self.key_ids:
            parts.append(SpendEventRow.api_key.in_(sorted(self.key_ids)))
        if self.user_ids:
            parts.append(SpendEventRow.user_id.in_(sorted(self.user_ids)))
        if self.team_ids:
            parts.append(SpendEventRow.team_id.in_(sorted(self.team_ids)))
        return or_(*parts) if parts else false()


async def spend_access(repo: EntityRepository, caller: Caller) -> SpendAccess:
    """The caller's :class:`SpendAccess`, read in the request's transaction."""
    if caller.reads_all:
        return SpendAccess(everything=True)
    own_key: set[str] = set()
    if caller.key_hash is not None:
        found = await repo.session.scalar(
            select(VirtualKey.key_id).where(VirtualKey.token == caller.key_hash)
        )
        if found is not None:
            own_key.add(found)
    if caller.user_id is None:
        return SpendAccess(everything=False, key_ids=frozenset(own_key))
    teams = frozenset(caller.admin_teams)
    mine = VirtualKey.user_id == caller.user_id
    owned = or_(mine, VirtualKey.team_id.in_(sorted(teams))) if teams else mine
    keys = set(await repo.session.scalars(select(VirtualKey.key_id).where(owned))) | own_key
    return SpendAccess(
        everything=False, key_ids=frozenset(keys), user_ids=frozenset({caller.user_id}), team_ids=teams
    )


async def resolve_key_ref(repo: EntityRepository, ref: str) -> str:
    """The ``key_id`` of the key a client names: the raw ``sk-…`` key, its hash (the
    ``token``, LiteLLM's hashed ``api_key``) or its id. A key that no longer exists (its
    events stay in the ledger) is named by its id, which is the hash it was issued with."""
    candidates = [ref, hash_key(ref)] if ref.startswith("sk-") else [ref]
    for value in candidates:
        found = await repo.session.scalar(
            select(VirtualKey.key_id)
            .where(or_(VirtualKey.token == value, VirtualKey.key_id == value))
            .limit(1)
        )
        if found is not None:
            return str(found)
    return candidates[-1]

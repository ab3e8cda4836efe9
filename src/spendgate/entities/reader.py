"""The gateway's read side of the entity tables: one engine-bound reader that answers the
request path's questions (who is this key, what are the limits above it, whose customer is
this, what does a tag allow), each in one short session over the
:class:`~spendgate.entities.repository.EntityRepository` (which holds every statement), and
decodes the rows into limits. Callers own the caching.

Nothing here raises an HTTP error (the caller decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.core.scopes import scope_type
from spendgate.entities.codec import CustomerOwners, KeyEntities, LimitSpec, decode_limits
from spendgate.entities.repository import EntityRepository
from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    Tag,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

__all__ = ["EntityReader", "KeyRecord"]

T = TypeVar("T")

# Budget windows are keyed by the scope type each entity is limited as.
_KEY, _USER, _TEAM, _ORGANIZATION, _END_USER = (
    scope_type(name).name for name in ("key", "user", "team", "organization", "end_user")
)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as authentication needs it, with its team's block and models."""

    key_id: str
    blocked: bool
    expires: datetime | None
    """UTC (a naive stored value is read as UTC)."""
    models: tuple[str, ...]
    metadata: dict[str, Any]
    tags: tuple[str, ...]
    user_id: str | None
    team_id: str | None
    organization_id: str | None
    """The key's own organization, else its team's."""
    end_user_id: str | None
    key_alias: str | None
    team_blocked: bool
    team_models: tuple[str, ...]
    user_blocked: bool = False
    """The key's user is blocked (``/user/update`` ``blocked``)."""
    organization_blocked: bool = False
    """The key's organization (its own, else its team's) is blocked."""


class EntityReader:
    """Engine-bound reads of keys, users, teams, organizations, customers and tags for the
    gateway (and the one insert the gateway makes: an unknown customer's default budget)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def key_by_hash(self, digest: str) -> KeyRecord | None:
        """The key whose stored hash is ``digest`` (authentication), or None."""
        async with AsyncSession(self.engine) as session:
            key = await EntityRepository(session).key_for_auth(digest)
        if key is None:
            return None
        expires = key["expires"]
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        metadata = key["metadata"] or {}
        return KeyRecord(
            key_id=key["key_id"],
            blocked=bool(key["blocked"]),
            expires=expires,
            models=tuple(key["models"] or ()),
            metadata=metadata if isinstance(metadata, dict) else {},
            tags=tuple(key["tags"] or ()),
            user_id=key["user_id"],
            team_id=key["team_id"],
            organization_id=key["organization_id"] or key["team_organization_id"],
            end_user_id=key["end_user_id"],
            key_alias=key["key_alias"],
            team_blocked=bool(key["team_blocked"]),
            team_models=tuple(key["team_models"] or ()),
            user_blocked=bool(key["user_blocked"]),
            organization_blocked=bool(key["organization_blocked"]),
        )

    async def key_entities(self, key_id: str) -> KeyEntities | None:
        """The limits of the key ``key_id`` and of every entity above it, or None."""
        async with AsyncSession(self.engine) as session:
            repo = EntityRepository(session)
            vk = await repo.key_by_id(key_id)
            return None if vk is None else await _entities(repo, vk)

    async def customer_owners(self, customer_id: str) -> CustomerOwners:
        """Who may bill ``customer_id`` by naming it (nobody named: anyone)."""
        async with AsyncSession(self.engine) as session:
            found = await EntityRepository(session).customer_owners(customer_id)
        if found is None:
            return CustomerOwners()  # unknown: no key can be bound to it either
        own, bound = found
        teams = {own[0]} if own[0] else set()
        orgs = {own[1]} if own[1] else set()
        users: set[str] = set()
        for team_id, org_id, user_id in bound:
            if team_id:
                teams.add(team_id)
            elif org_id:
                orgs.add(org_id)
            elif user_id:
                users.add(user_id)
        return CustomerOwners(frozenset(teams), frozenset(orgs), frozenset(users))

    async def customer_limits(self, customer_id: str) -> LimitSpec | None:
        """The customer's limits (with its budget profile and windows), or None if unknown."""
        async with AsyncSession(self.engine) as session:
            repo = EntityRepository(session)
            row = await _get(repo, EndCustomer, customer_id)
            if row is None:
                return None
            profile = await _get(repo, Budget, row.budget_id)
            return decode_limits(row, profile, await _windows(repo, _END_USER, customer_id))

    async def create_customer(self, customer_id: str, max_budget_nanos: int | None) -> None:
        """Insert the customer with ``max_budget_nanos`` unless it exists (insert-or-ignore:
        any number of concurrent first requests, in any number of processes, create it once)."""
        values = {
            "user_id": customer_id,
            "max_budget_nanos": max_budget_nanos,
            "blocked": False,
            "created_by": "spendgate:max_end_user_budget",
            "updated_by": "spendgate:max_end_user_budget",
        }
        async with AsyncSession(self.engine) as session, session.begin():
            await EntityRepository(session).add_customer_if_absent(values)

    async def tag_limits(self, tag: str) -> LimitSpec | None:
        """The limits of ``tag``'s budget profile, or None when it has none."""
        async with AsyncSession(self.engine) as session:
            repo = EntityRepository(session)
            row = await _get(repo, Tag, tag)
            if row is None or not row.budget_id:
                return None
            profile = await _get(repo, Budget, row.budget_id)
            return None if profile is None else decode_limits(None, profile)


async def _entities(repo: EntityRepository, vk: VirtualKey) -> KeyEntities:
    team = await _get(repo, Team, vk.team_id)
    user = await _get(repo, User, vk.user_id)
    org_id = vk.organization_id or (team.organization_id if team is not None else None)
    org = await _get(repo, Organization, org_id)
    member_profile: Budget | None = None
    if vk.team_id and vk.user_id:
        membership = await repo.get(TeamMembership, (vk.user_id, vk.team_id))
        if membership is not None and membership.budget_id:
            member_profile = await _get(repo, Budget, membership.budget_id)
    return KeyEntities(
        key=decode_limits(vk, await _get(repo, Budget, vk.budget_id), await _windows(repo, _KEY, vk.key_id)),
        user_id=vk.user_id,
        user=None if user is None else decode_limits(user, None, await _windows(repo, _USER, user.user_id)),
        team_id=vk.team_id,
        team=None
        if team is None
        else decode_limits(
            team, await _get(repo, Budget, team.budget_id), await _windows(repo, _TEAM, team.team_id)
        ),
        member=None if member_profile is None else decode_limits(None, member_profile),
        organization_id=org_id,
        organization=None
        if org is None
        else decode_limits(
            org,
            await _get(repo, Budget, org.budget_id),
            await _windows(repo, _ORGANIZATION, org.organization_id),
        ),
        end_user_id=vk.end_user_id,
        tags=tuple(vk.tags or ()),
    )


async def _get(repo: EntityRepository, model: type[T], ident: Any) -> T | None:
    return None if ident is None else await repo.get(model, ident)


async def _windows(repo: EntityRepository, kind: str, scope_id: str) -> list[BudgetWindow]:
    return (await repo.windows(kind, [scope_id]))[scope_id]

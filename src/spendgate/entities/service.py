"""The rules of creating, changing, reading and deleting entities, written once.

Users, teams, organizations, customers and budget profiles share one shape: an id given
or generated, a 409 if it exists, fields copied from the request (referenced objects must
exist: 404 naming the field), audit columns stamped, extra budget windows replaced, and a
delete that refuses (409) while something still depends on the object. :class:`EntityKind`
describes each; :class:`EntityService` applies the shape to any of them over one session.

The service never commits and knows nothing of HTTP or roles: it raises
:mod:`spendgate.entities.errors`, and the management API checks who may call it and commits
once per request. Request bodies are read by field name (``model_fields_set`` says which
were given), so an update touches only what was sent and an explicit ``null`` clears.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from spendgate.core.scopes import ScopeType, scope_type
from spendgate.entities.codec import apply_limits, nanos
from spendgate.entities.errors import EntityConflict, EntityInvalid, EntityNotFound
from spendgate.entities.repository import EntityRepository
from spendgate.stores.database.models import Budget, EndCustomer, Organization, Team, User

__all__ = [
    "BUDGETS",
    "CUSTOMERS",
    "INTERNAL_METADATA",
    "MANAGED_METADATA",
    "ORGANIZATIONS",
    "TEAMS",
    "USERS",
    "EntityKind",
    "EntityService",
    "merged_metadata",
    "utc",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EntityKind:
    """One kind of entity: its table, what messages call it, its id column, the scope type
    it is limited as (its budget windows are keyed by it; None: it has none) and the
    columns a new row starts with."""

    model: type[Any]
    what: str
    id_field: str
    scope: ScopeType | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def new(self, ident: str) -> Any:
        return self.model(**{self.id_field: ident}, **self.defaults)


BUDGETS = EntityKind(Budget, "budget", "budget_id")
CUSTOMERS = EntityKind(EndCustomer, "customer", "user_id", scope_type("end_user"), {"blocked": False})
ORGANIZATIONS = EntityKind(
    Organization, "organization", "organization_id", scope_type("organization"), {"blocked": False}
)
TEAMS = EntityKind(Team, "team", "team_id", scope_type("team"), {"blocked": False})
USERS = EntityKind(User, "user", "user_id", scope_type("user"), {"blocked": False})

INTERNAL_METADATA = frozenset({"temp_budget_increase_nanos"})
"""Metadata keys spendgate writes itself and never shows (their USD form is shown instead)."""

MANAGED_METADATA = INTERNAL_METADATA | {"model_rpm_limit", "model_tpm_limit", "temp_budget_expiry", "tags"}
"""Metadata keys set through their own request fields; a new ``metadata`` keeps them."""


def merged_metadata(stored: dict[str, Any] | None, given: dict[str, Any]) -> dict[str, Any]:
    """Replace the caller's part of ``metadata``; keep the keys set through their own fields
    unless ``given`` names them (LiteLLM clients send ``model_rpm_limit`` in metadata)."""
    for name in INTERNAL_METADATA:
        if name in given:
            raise EntityInvalid(f"metadata.{name} is reserved", param=f"metadata.{name}")
    kept = {k: v for k, v in (stored or {}).items() if k in MANAGED_METADATA}
    return {**kept, **_plain(given)}


def _plain(value: Any) -> Any:
    """JSON-storable: a body's Decimals (exact JSON numbers) become ints or floats again."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def utc(value: datetime | None) -> datetime | None:
    """A naive datetime from a request is read as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EntityService:
    """Create / update / read / delete of any :class:`EntityKind`, over one session whose
    transaction the caller commits; ``now`` and ``by`` stamp the audit columns."""

    def __init__(self, repo: EntityRepository, *, now: datetime, by: str) -> None:
        self.repo = repo
        self.now = now
        self.by = by

    # -- reading ---------------------------------------------------------------------------

    async def find(self, kind: EntityKind, ident: str) -> Any:
        return await self.repo.get(kind.model, ident)

    async def require(self, kind: EntityKind, ident: str, param: str) -> Any:
        """The object ``ident``, or 404 naming it and the request field ``param``."""
        row = await self.repo.get(kind.model, ident)
        if row is None:
            raise EntityNotFound(f"{kind.what} {ident!r} not found", param=param)
        return row

    async def require_all(self, kind: EntityKind, ids: Sequence[str], param: str) -> list[Any]:
        return [await self.require(kind, ident, param) for ident in ids]

    async def check_refs(self, body: Any, refs: Sequence[tuple[str, EntityKind]]) -> None:
        """404 for each ``(field, kind)`` the request gave (not null) that names nothing."""
        given = body.model_fields_set
        for name, kind in refs:
            value = getattr(body, name)
            if value is not None and name in given:
                await self.require(kind, value, name)

    # -- writing ---------------------------------------------------------------------------

    def stamp(self, row: Any, *, created: bool = False) -> None:
        """Set the audit columns explicitly (server defaults would need a reload)."""
        if created:
            row.created_at = self.now
            row.created_by = self.by
        row.updated_at = self.now
        row.updated_by = self.by

    async def create(
        self,
        kind: EntityKind,
        ident: str,
        fill: Callable[[Any], Awaitable[None]],
        *,
        windows: Sequence[Any] | None = None,
    ) -> Any:
        """A new object ``ident`` (409 if it exists), filled by ``fill`` (which may refuse),
        stamped, inserted, with its budget windows."""
        if await self.repo.get(kind.model, ident) is not None:
            raise EntityConflict(f"{kind.what} {ident!r} already exists", param=kind.id_field)
        row = kind.new(ident)
        await fill(row)
        self.stamp(row, created=True)
        await self.repo.add(row)
        if kind.scope is not None:
            await self.set_windows(kind, ident, windows)
        return row

    async def save(self, kind: EntityKind, row: Any, body: Any | None = None) -> None:
        """Stamp and flush a changed object; replace its windows if ``body`` gave
        ``budget_limits``."""
        self.stamp(row)
        await self.repo.flush()
        if kind.scope is not None and body is not None and "budget_limits" in body.model_fields_set:
            await self.set_windows(kind, getattr(row, kind.id_field), body.budget_limits)

    async def set_windows(self, kind: EntityKind, ident: str, windows: Sequence[Any] | None) -> None:
        """Make the object's extra budget windows exactly ``windows`` (items with
        ``budget_duration`` and ``max_budget`` in USD; None or empty: none)."""
        assert kind.scope is not None
        pairs = [(w.budget_duration, nanos(w.max_budget)) for w in windows or ()]
        await self.repo.replace_windows(kind.scope.name, ident, pairs, now=self.now, by=self.by)

    def apply_fields(
        self,
        row: Any,
        body: Any,
        plain: Sequence[str],
        *,
        then: Callable[[Any], None] | None = None,
    ) -> None:
        """Copy the given ``plain`` fields, ``blocked``, ``metadata`` (merged, see
        :func:`merged_metadata`) and the budget and rate-limit fields onto ``row``; ``then``
        runs after the metadata, before the limits."""
        given = body.model_fields_set
        for name in plain:
            if name in given:
                setattr(row, name, getattr(body, name))
        if "blocked" in given:
            row.blocked = bool(body.blocked)
        if "metadata" in given:
            row.metadata_ = merged_metadata(row.metadata_, body.metadata or {})
        if then is not None:
            then(row)
        apply_limits(row, body, now=self.now)

    async def delete(self, kind: EntityKind, ids: Sequence[str]) -> None:
        """Delete the objects and their budget windows (what depends on them is the
        caller's: refuse, or delete it first)."""
        if kind.scope is not None:
            await self.repo.delete_windows(kind.scope.name, ids)
        await self.repo.delete_by_ids(kind.model, kind.id_field, ids)

    async def list_all(self, kind: EntityKind, *, search: str | None = None) -> list[Any]:
        """Every object of ``kind`` (those whose id or name contains ``search``, if given),
        oldest first."""
        return await self.repo.all_ordered(kind.model, kind.id_field, search=search)

    # -- rules of one kind -----------------------------------------------------------------

    async def check_customer(self, customer: EndCustomer, body: Any) -> None:
        """A customer's budget is a profile or a ``max_budget``, not both (422); 404 for an
        unknown budget, team or organization; 422 for a team outside the organization."""
        if body.budget_id is not None and body.max_budget is not None:
            raise EntityInvalid("give budget_id or max_budget, not both", param="budget_id")
        await self.check_refs(body, [("budget_id", BUDGETS)])
        given = body.model_fields_set
        team_id = body.team_id if "team_id" in given else customer.team_id
        org_id = body.organization_id if "organization_id" in given else customer.organization_id
        await self.check_refs(body, [("organization_id", ORGANIZATIONS)])
        if team_id is None:
            return
        team: Team = await self.require(TEAMS, team_id, "team_id")
        if org_id is not None and team.organization_id != org_id:
            raise EntityInvalid(
                f"team {team_id!r} does not belong to organization {org_id!r}", param="organization_id"
            )

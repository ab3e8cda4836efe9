"""Every statement the management side runs on the entity tables, in one place.

:class:`EntityRepository` wraps one open session: it reads, adds, changes and deletes rows
and flushes, but **never commits**: the caller owns the transaction (the management API
commits once per request, so a refused request changes nothing). Methods take domain
arguments (ids, filters, pages), never SQL fragments, so no other module writes SQL for
keys, users, teams, organizations, customers, budgets, memberships or budget windows.
The gateway's reads go through it too (:class:`~spendgate.entities.reader.EntityReader`
opens a session per question, asks here, and decodes the rows into limits).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, RowMapping, Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.core.scopes import scope_type
from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    OrganizationMembership,
    Tag,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

__all__ = ["BUDGET_REFERRERS", "SEARCHED", "EntityRepository", "KeyFilter", "Page", "UserFilter"]

T = TypeVar("T")

BUDGET_REFERRERS: tuple[tuple[type[Any], str], ...] = (
    (VirtualKey, "keys"),
    (Team, "teams"),
    (Organization, "organizations"),
    (EndCustomer, "customers"),
    (TeamMembership, "team memberships"),
    (OrganizationMembership, "organization memberships"),
    (Tag, "tags"),
)
"""What may point at a budget profile through ``budget_id`` (and what to call them)."""

_ORGANIZATION_OWNED: tuple[tuple[type[Any], str], ...] = (
    (Team, "teams"),
    (User, "users"),
    (VirtualKey, "keys"),
    (EndCustomer, "customers"),
)


SEARCHED: dict[type[Any], tuple[str, ...]] = {
    VirtualKey: ("key_alias", "key_name", "key_id", "token", "user_id", "team_id"),
    User: ("user_id", "user_email", "user_alias"),
    Team: ("team_id", "team_alias"),
    EndCustomer: ("user_id", "alias"),
}
"""The columns a listing's ``search`` looks in, per table."""


def _matching(model: type[Any], term: str) -> ColumnElement[bool]:
    """Any of ``model``'s :data:`SEARCHED` columns contains ``term``, case-insensitively
    (a bound parameter; LIKE's ``%`` and ``_`` in it match themselves). No index serves a
    substring: the listing scans the table, and returns a page (keys, users) or the few
    teams and customers there are."""
    return or_(*(getattr(model, name).icontains(term, autoescape=True) for name in SEARCHED[model]))


@dataclass(frozen=True, slots=True)
class Page:
    """Rows ``offset`` … ``offset + limit`` of a listing, and how many there are in all."""

    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Which keys a listing shows (``restricted``: only those owned by ``visible_to`` and
    those of ``admin_teams``); the rest are equality filters."""

    restricted: bool = False
    visible_to: str | None = None
    admin_teams: Sequence[str] = ()
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    key_alias: str | None = None
    search: str | None = None
    """A fragment of the alias, name, id, user id or team id (see :data:`SEARCHED`)."""
    budgeted: bool = False
    """Only keys that may have a budget window: a ``max_budget``, a budget profile, a
    ``model_max_budget`` or ``budget_limits`` (a superset: the caller decodes the limits)."""


_KEY_WINDOWS = scope_type("key").name
"""The ``scope_type`` of keys' ``budget_limits`` rows."""


@dataclass(frozen=True, slots=True)
class UserFilter:
    """Which users a listing shows (``restricted``: only ``visible_to`` and the members of
    ``admin_teams``)."""

    restricted: bool = False
    visible_to: str | None = None
    admin_teams: Sequence[str] = ()
    role: str | None = None
    user_ids: Sequence[str] | None = None
    organization_id: str | None = None
    search: str | None = None
    """A fragment of the id, e-mail or alias (see :data:`SEARCHED`)."""


class EntityRepository:
    """The entity statements, over one session the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- any entity ------------------------------------------------------------------------

    async def get(self, model: type[T], ident: Any) -> T | None:
        """The row of ``model`` with primary key ``ident``."""
        return await self.session.get(model, ident)

    async def add(self, row: Any) -> None:
        """Insert ``row`` (flushed: database errors surface here, inside the transaction)."""
        self.session.add(row)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def remove(self, row: Any) -> None:
        await self.session.delete(row)

    async def delete_by_ids(self, model: type[Any], column: str, ids: Sequence[str]) -> None:
        """Delete the rows of ``model`` whose ``column`` is one of ``ids``."""
        await self.session.execute(delete(model).where(getattr(model, column).in_(ids)))

    async def all_ordered(self, model: type[T], id_column: str, *, search: str | None = None) -> list[T]:
        """Every row of ``model`` (only those matching ``search``, if given), oldest first
        (ties by id)."""
        stmt = select(model).order_by(model.created_at, getattr(model, id_column))  # type: ignore[attr-defined]
        if search is not None:
            stmt = stmt.where(_matching(model, search))
        return list(await self.session.scalars(stmt))

    # -- budget windows --------------------------------------------------------------------

    async def replace_windows(
        self,
        scope_type: str,
        scope_id: str,
        windows: Iterable[tuple[str, int | None]],
        *,
        now: datetime,
        by: str,
    ) -> None:
        """Make the scope's extra budget windows exactly ``windows`` ((duration, nanos)).

        A window whose duration was there before keeps its ``created_at``: its start, where
        a duration that is no calendar unit counts its periods from."""
        old = await self.windows(scope_type, [scope_id])
        started = {w.budget_duration: w.created_at for w in old[scope_id]}
        await self.session.execute(
            delete(BudgetWindow).where(
                BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id == scope_id
            )
        )
        for duration, max_nanos in windows:
            self.session.add(
                BudgetWindow(
                    scope_type=scope_type,
                    scope_id=scope_id,
                    budget_duration=duration,
                    max_budget_nanos=max_nanos,
                    created_at=started.get(duration, now),
                    updated_at=now,
                    created_by=by,
                    updated_by=by,
                )
            )
        await self.session.flush()

    async def delete_windows(self, scope_type: str, scope_ids: Sequence[str]) -> None:
        if scope_ids:
            await self.session.execute(
                delete(BudgetWindow).where(
                    BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id.in_(scope_ids)
                )
            )

    async def windows(self, scope_type: str, scope_ids: Sequence[str]) -> dict[str, list[BudgetWindow]]:
        """The windows of each scope id, in the order they were made."""
        out: dict[str, list[BudgetWindow]] = {sid: [] for sid in scope_ids}
        if not scope_ids:
            return out
        rows = await self.session.scalars(
            select(BudgetWindow)
            .where(BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id.in_(scope_ids))
            .order_by(BudgetWindow.scope_id, BudgetWindow.id)
        )
        for w in rows:
            out[w.scope_id].append(w)
        return out

    # -- budgets ---------------------------------------------------------------------------

    async def budgets(self, budget_ids: Sequence[str]) -> dict[str, Budget]:
        rows = await self.session.scalars(select(Budget).where(Budget.budget_id.in_(budget_ids)))
        return {b.budget_id: b for b in rows}

    async def budget_used_by(self, budget_id: str) -> str | None:
        """What still uses the budget (``"3 keys"``: the first kind found), or None."""
        for model, what in BUDGET_REFERRERS:
            count = await self.session.scalar(select(func.count()).where(model.budget_id == budget_id))
            if count:
                return f"{count} {what}"
        return None

    # -- users -----------------------------------------------------------------------------

    async def user_by_email(self, email: str | None) -> User | None:
        found: User | None = await self.session.scalar(select(User).where(User.user_email == email).limit(1))
        return found

    async def user_id_by_email(self, email: str | None) -> str | None:
        found: str | None = await self.session.scalar(
            select(User.user_id).where(User.user_email == email).limit(1)
        )
        return found

    async def team_ids_of_users(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """The teams each user is a member of, by team id."""
        out: dict[str, list[str]] = {i: [] for i in user_ids}
        if user_ids:
            rows = await self.session.execute(
                select(TeamMembership.user_id, TeamMembership.team_id)
                .where(TeamMembership.user_id.in_(user_ids))
                .order_by(TeamMembership.team_id)
            )
            for user_id, team_id in rows:
                out[user_id].append(team_id)
        return out

    async def list_users(self, where: UserFilter, page: Page) -> tuple[int, list[User]]:
        stmt = select(User)
        if where.restricted:
            visible = [User.user_id == where.visible_to]
            if where.admin_teams:
                visible.append(
                    User.user_id.in_(
                        select(TeamMembership.user_id).where(TeamMembership.team_id.in_(where.admin_teams))
                    )
                )
            stmt = stmt.where(or_(*visible))
        if where.role is not None:
            stmt = stmt.where(User.user_role == where.role)
        if where.user_ids is not None:
            stmt = stmt.where(User.user_id.in_(where.user_ids))
        if where.organization_id is not None:
            stmt = stmt.where(User.organization_id == where.organization_id)
        if where.search is not None:
            stmt = stmt.where(_matching(User, where.search))
        return await self._page(stmt, (User.created_at, User.user_id), page)

    async def delete_org_memberships_of_users(self, user_ids: Sequence[str]) -> None:
        await self.session.execute(
            delete(OrganizationMembership).where(OrganizationMembership.user_id.in_(user_ids))
        )

    async def caller_user(self, user_id: str) -> tuple[str, bool, str | None] | None:
        """``(user_role, blocked, organization_id)`` of a caller's user, or None."""
        row = (
            await self.session.execute(
                select(User.user_role, User.blocked, User.organization_id).where(User.user_id == user_id)
            )
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    async def organizations_of_user(self, user_id: str) -> set[str]:
        """The organizations the user is a member of (by membership)."""
        rows = await self.session.scalars(
            select(OrganizationMembership.organization_id).where(OrganizationMembership.user_id == user_id)
        )
        return set(rows.all())

    # -- teams and memberships -------------------------------------------------------------

    async def teams(self, team_ids: Sequence[str]) -> list[Team]:
        """The teams ``team_ids`` that exist, by id."""
        return list(
            await self.session.scalars(select(Team).where(Team.team_id.in_(team_ids)).order_by(Team.team_id))
        )

    async def list_teams(
        self,
        *,
        among: Sequence[str] | None,
        organization_id: str | None,
        user_id: str | None,
        search: str | None = None,
    ) -> list[Team]:
        """Teams (only those ``among``, unless None), oldest first, with equality filters
        and a ``search`` fragment."""
        stmt = select(Team)
        if search is not None:
            stmt = stmt.where(_matching(Team, search))
        if among is not None:
            stmt = stmt.where(Team.team_id.in_(among))
        if organization_id is not None:
            stmt = stmt.where(Team.organization_id == organization_id)
        if user_id is not None:
            stmt = stmt.where(
                Team.team_id.in_(select(TeamMembership.team_id).where(TeamMembership.user_id == user_id))
            )
        return list(await self.session.scalars(stmt.order_by(Team.created_at, Team.team_id)))

    async def team_members(self, team_ids: Sequence[str]) -> dict[str, list[tuple[str, str, str | None]]]:
        """``(user_id, role, user_email)`` of each team's members, by user id."""
        out: dict[str, list[tuple[str, str, str | None]]] = {i: [] for i in team_ids}
        if team_ids:
            rows = await self.session.execute(
                select(TeamMembership.team_id, TeamMembership.user_id, TeamMembership.role, User.user_email)
                .join(User, User.user_id == TeamMembership.user_id)
                .where(TeamMembership.team_id.in_(team_ids))
                .order_by(TeamMembership.team_id, TeamMembership.user_id)
            )
            for team_id, user_id, role, email in rows:
                out[team_id].append((user_id, role, email))
        return out

    async def memberships_of_team(self, team_id: str) -> list[TeamMembership]:
        stmt = (
            select(TeamMembership).where(TeamMembership.team_id == team_id).order_by(TeamMembership.user_id)
        )
        return list(await self.session.scalars(stmt))

    async def memberships(
        self, *, team_ids: Sequence[str] | None = None, user_ids: Sequence[str] | None = None
    ) -> list[TeamMembership]:
        """Memberships in any of ``team_ids`` and of any of ``user_ids`` (None: any)."""
        stmt = select(TeamMembership)
        if team_ids is not None:
            stmt = stmt.where(TeamMembership.team_id.in_(team_ids))
        if user_ids is not None:
            stmt = stmt.where(TeamMembership.user_id.in_(user_ids))
        return list(await self.session.scalars(stmt))

    async def caller_teams(self, user_id: str) -> dict[str, str]:
        """team id → the user's membership role in it."""
        rows = await self.session.execute(
            select(TeamMembership.team_id, TeamMembership.role).where(TeamMembership.user_id == user_id)
        )
        return {team_id: role for team_id, role in rows}

    async def count_customers_of_teams(self, team_ids: Sequence[str]) -> int:
        return int(
            await self.session.scalar(select(func.count()).where(EndCustomer.team_id.in_(team_ids))) or 0
        )

    # -- organizations ---------------------------------------------------------------------

    async def list_organizations(
        self, *, among: Sequence[str] | None, alias: str | None
    ) -> list[Organization]:
        stmt = select(Organization)
        if among is not None:
            stmt = stmt.where(Organization.organization_id.in_(among))
        if alias is not None:
            stmt = stmt.where(Organization.organization_alias == alias)
        return list(
            await self.session.scalars(stmt.order_by(Organization.created_at, Organization.organization_id))
        )

    async def organization_teams(self, org_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {i: [] for i in org_ids}
        if org_ids:
            rows = await self.session.execute(
                select(Team.organization_id, Team.team_id)
                .where(Team.organization_id.in_(org_ids))
                .order_by(Team.team_id)
            )
            for org_id, team_id in rows:
                if org_id is not None:
                    out[org_id].append(team_id)
        return out

    async def organization_members(self, org_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """``(user_id, user_role)`` of each organization's members."""
        out: dict[str, list[tuple[str, str]]] = {i: [] for i in org_ids}
        if org_ids:
            rows = await self.session.execute(
                select(
                    OrganizationMembership.organization_id,
                    OrganizationMembership.user_id,
                    OrganizationMembership.user_role,
                )
                .where(OrganizationMembership.organization_id.in_(org_ids))
                .order_by(OrganizationMembership.user_id)
            )
            for org_id, user_id, role in rows:
                out[org_id].append((user_id, role))
        return out

    async def organization_owns(self, org_ids: Sequence[str]) -> tuple[int, str] | None:
        """The first kind of object the organizations still own, with its count, or None."""
        for model, what in _ORGANIZATION_OWNED:
            count = await self.session.scalar(select(func.count()).where(model.organization_id.in_(org_ids)))
            if count:
                return int(count), what
        return None

    async def delete_org_memberships_of_orgs(self, org_ids: Sequence[str]) -> None:
        await self.session.execute(
            delete(OrganizationMembership).where(OrganizationMembership.organization_id.in_(org_ids))
        )

    # -- keys ------------------------------------------------------------------------------

    async def key_taken_by(self, token: str) -> str | None:
        """The ``key_id`` of the key whose current hash or stable id is ``token``, if any."""
        found: str | None = await self.session.scalar(
            select(VirtualKey.key_id)
            .where(or_(VirtualKey.token == token, VirtualKey.key_id == token))
            .limit(1)
        )
        return found

    async def key_by_alias(self, alias: str) -> VirtualKey | None:
        found: VirtualKey | None = await self.session.scalar(
            select(VirtualKey).where(VirtualKey.key_alias == alias)
        )
        return found

    async def token_of_alias(self, alias: str) -> str | None:
        found: str | None = await self.session.scalar(
            select(VirtualKey.token).where(VirtualKey.key_alias == alias)
        )
        return found

    async def caller_key(self, token: str) -> tuple[str | None, bool, datetime | None] | None:
        """``(user_id, blocked, expires)`` of the key with hash ``token``, or None."""
        row = (
            await self.session.execute(
                select(VirtualKey.user_id, VirtualKey.blocked, VirtualKey.expires).where(
                    VirtualKey.token == token
                )
            )
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    async def keys_of(
        self, *, team_id: str | None = None, user_id: str | None = None, teams: Sequence[str] | None = None
    ) -> list[VirtualKey]:
        """Keys of a team and/or a user (``teams``: only in those teams), oldest first."""
        stmt = select(VirtualKey)
        if team_id is not None:
            stmt = stmt.where(VirtualKey.team_id == team_id)
        if user_id is not None:
            stmt = stmt.where(VirtualKey.user_id == user_id)
        if teams is not None:
            stmt = stmt.where(VirtualKey.team_id.in_(teams))
        return list(await self.session.scalars(stmt.order_by(VirtualKey.created_at, VirtualKey.token)))

    async def list_keys(self, where: KeyFilter, page: Page) -> tuple[int, list[VirtualKey]]:
        stmt = select(VirtualKey)
        if where.restricted:
            scope = [VirtualKey.user_id == where.visible_to]
            if where.admin_teams:
                scope.append(VirtualKey.team_id.in_(where.admin_teams))
            stmt = stmt.where(or_(*scope))
        for name in ("user_id", "team_id", "organization_id", "key_alias"):
            value = getattr(where, name)
            if value is not None:
                stmt = stmt.where(getattr(VirtualKey, name) == value)
        if where.search is not None:
            stmt = stmt.where(_matching(VirtualKey, where.search))
        if where.budgeted:
            windows = select(BudgetWindow.scope_id).where(BudgetWindow.scope_type == _KEY_WINDOWS)
            stmt = stmt.where(
                or_(
                    VirtualKey.max_budget_nanos.is_not(None),
                    VirtualKey.budget_id.is_not(None),
                    VirtualKey.model_max_budget.is_not(None),
                    VirtualKey.key_id.in_(windows),
                )
            )
        return await self._page(stmt, (VirtualKey.created_at, VirtualKey.token), page)

    async def key_ids(
        self,
        *,
        team_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> list[tuple[str, str]]:
        """``(token, key_id)`` of the keys in any of ``team_ids`` and of any of ``user_ids``."""
        stmt = select(VirtualKey.token, VirtualKey.key_id)
        if team_ids is not None:
            stmt = stmt.where(VirtualKey.team_id.in_(team_ids))
        if user_ids is not None:
            stmt = stmt.where(VirtualKey.user_id.in_(user_ids))
        return [(token, key_id) for token, key_id in await self.session.execute(stmt)]

    async def delete_keys(self, tokens: Sequence[str]) -> None:
        if tokens:
            await self.session.execute(
                delete(VirtualKey)
                .where(VirtualKey.token.in_(tokens))
                .execution_options(synchronize_session=False)
            )

    async def retoken_key(
        self, old: str, token: str, *, prefix: str, name: str, now: datetime, by: str
    ) -> None:
        """Give the key hashed ``old`` a new hash (its primary key) and display name."""
        await self.session.execute(
            update(VirtualKey)
            .where(VirtualKey.token == old)
            .values(token=token, key_prefix=prefix, key_name=name, updated_at=now, updated_by=by)
            .execution_options(synchronize_session=False)
        )

    def forget(self, row: Any) -> None:
        """Detach ``row`` from the session (its primary key changed behind the ORM's back)."""
        self.session.expunge(row)

    async def count_keys_bound_to(self, customer_ids: Sequence[str]) -> int:
        stmt = select(func.count()).where(VirtualKey.end_user_id.in_(customer_ids))
        return int(await self.session.scalar(stmt) or 0)

    # -- the gateway's reads ----------------------------------------------------------------

    async def key_for_auth(self, digest: str) -> RowMapping | None:
        """The key stored under hash ``digest`` with what authentication needs of its team,
        its user and its organization (the key's own, else its team's): their blocks."""
        org = Organization.__table__.alias("key_org")
        stmt = (
            select(
                VirtualKey.key_id,
                VirtualKey.blocked,
                VirtualKey.expires,
                VirtualKey.models,
                VirtualKey.metadata_.label("metadata"),
                VirtualKey.tags,
                VirtualKey.user_id,
                VirtualKey.team_id,
                VirtualKey.organization_id,
                VirtualKey.end_user_id,
                VirtualKey.key_alias,
                Team.blocked.label("team_blocked"),
                Team.models.label("team_models"),
                Team.organization_id.label("team_organization_id"),
                User.blocked.label("user_blocked"),
                org.c.blocked.label("organization_blocked"),
            )
            .outerjoin(Team, Team.team_id == VirtualKey.team_id)
            .outerjoin(User, User.user_id == VirtualKey.user_id)
            .outerjoin(
                org, org.c.organization_id == func.coalesce(VirtualKey.organization_id, Team.organization_id)
            )
            .where(VirtualKey.token == digest)
        )
        row = (await self.session.execute(stmt)).first()
        return None if row is None else row._mapping

    async def key_by_id(self, key_id: str) -> VirtualKey | None:
        """The key whose stable id is ``key_id`` (the hash it was first issued with)."""
        found: VirtualKey | None = await self.session.scalar(
            select(VirtualKey).where(VirtualKey.key_id == key_id).limit(1)
        )
        return found

    async def customer_owners(self, customer_id: str) -> tuple[Any, list[Any]] | None:
        """The customer's own (team, organization), and the (team, organization, user) of
        every key bound to it; None when the customer is unknown."""
        own = (
            await self.session.execute(
                select(EndCustomer.team_id, EndCustomer.organization_id).where(
                    EndCustomer.user_id == customer_id
                )
            )
        ).first()
        if own is None:
            return None
        bound = await self.session.execute(
            select(VirtualKey.team_id, VirtualKey.organization_id, VirtualKey.user_id).where(
                VirtualKey.end_user_id == customer_id
            )
        )
        return own, list(bound)

    async def add_customer_if_absent(self, values: dict[str, Any]) -> None:
        """Insert a customer unless one with its id exists (insert-or-ignore: concurrent
        first requests, in any number of processes, create it once)."""
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            await self.session.execute(pg_insert(EndCustomer).values(**values).on_conflict_do_nothing())
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            await self.session.execute(sqlite_insert(EndCustomer).values(**values).on_conflict_do_nothing())
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            if await self.get(EndCustomer, values["user_id"]) is None:
                await self.add(EndCustomer(**values))

    # -- helpers ---------------------------------------------------------------------------

    async def _page(self, stmt: Select[Any], order: tuple[Any, ...], page: Page) -> tuple[int, list[Any]]:
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = await self.session.scalars(stmt.order_by(*order).offset(page.offset).limit(page.size))
        return int(total), list(rows)

"""Who is calling the management API, and what they may do.

The caller comes only from the credential (DESIGN §1.9): ``Authorization: Bearer <key>``.

* the master key → ``proxy_admin``;
* a virtual key → the ``user_role`` of the user it belongs to: ``proxy_admin``,
  ``proxy_admin_viewer``, ``internal_user`` or ``internal_user_viewer``;
* a **team admin** is any user with a ``role="admin"`` membership in a team: an extra right
  over that team's keys and members, on top of the user's role;
* a key without a user has no management rights at all (403).

The per-endpoint rules are in ``docs/admin-api.md``; the helpers here are what the handlers
call to apply them.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from spendgate.core.keys import hash_key
from spendgate.entities.repository import EntityRepository
from spendgate.http.errors import AuthenticationFailed, PermissionDenied

__all__ = [
    "PROXY_ADMIN",
    "PROXY_ADMIN_VIEWER",
    "ROLES",
    "Caller",
    "require_admin",
    "require_reader",
    "resolve_caller",
]

PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
INTERNAL_USER = "internal_user"
INTERNAL_USER_VIEWER = "internal_user_viewer"
ROLES = (PROXY_ADMIN, PROXY_ADMIN_VIEWER, INTERNAL_USER, INTERNAL_USER_VIEWER)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of a management request."""

    role: str | None
    """One of :data:`ROLES`, or None for a key that belongs to no user."""
    user_id: str | None = None
    key_hash: str | None = None
    is_master: bool = False
    teams: Mapping[str, str] = field(default_factory=dict)
    """team_id → the caller's membership role in it (``admin`` or ``user``)."""
    organization_ids: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role == PROXY_ADMIN

    @property
    def reads_all(self) -> bool:
        """proxy_admin and proxy_admin_viewer read every object."""
        return self.role in (PROXY_ADMIN, PROXY_ADMIN_VIEWER)

    @property
    def read_only(self) -> bool:
        return self.role in (PROXY_ADMIN_VIEWER, INTERNAL_USER_VIEWER)

    @property
    def name(self) -> str:
        """What ``created_by`` / ``updated_by`` record."""
        return "master_key" if self.is_master else (self.user_id or "unknown")

    def admins_team(self, team_id: str | None) -> bool:
        """True for a proxy_admin, or a team admin of ``team_id``."""
        if self.is_admin:
            return True
        return team_id is not None and self.teams.get(team_id) == "admin" and not self.read_only

    def in_team(self, team_id: str | None) -> bool:
        return team_id is not None and team_id in self.teams

    @property
    def admin_teams(self) -> list[str]:
        return sorted(t for t, role in self.teams.items() if role == "admin")


def require_admin(caller: Caller, what: str) -> None:
    """Raise 403 unless the caller is a proxy_admin."""
    if not caller.is_admin:
        raise PermissionDenied(f"only a proxy_admin may {what}")


def require_reader(caller: Caller, what: str) -> None:
    """Raise 403 unless the caller is a proxy_admin or proxy_admin_viewer."""
    if not caller.reads_all:
        raise PermissionDenied(f"only a proxy_admin or proxy_admin_viewer may {what}")


async def resolve_caller(repo: EntityRepository, raw_key: str, master_key_hash: str, now: datetime) -> Caller:
    """The caller behind ``raw_key`` (compared by hash only), or 401 / 403."""
    digest = hash_key(raw_key)
    if hmac.compare_digest(digest, master_key_hash):
        return Caller(role=PROXY_ADMIN, key_hash=digest, is_master=True)
    key = await repo.caller_key(digest)
    if key is None:
        raise AuthenticationFailed("invalid API key")
    user_id, blocked, expires = key
    if blocked:
        raise PermissionDenied("this API key is blocked", code="key_blocked")
    if expires is not None and expires <= now:
        raise AuthenticationFailed("this API key has expired", code="key_expired")
    if user_id is None:
        return Caller(role=None, key_hash=digest)
    user = await repo.caller_user(user_id)
    if user is None:
        return Caller(role=None, key_hash=digest)
    role, user_blocked, org_id = user
    if user_blocked:
        raise PermissionDenied(f"user {user_id!r} is blocked", code="user_blocked")
    teams = await repo.caller_teams(user_id)
    orgs = await repo.organizations_of_user(user_id)
    if org_id:
        orgs.add(org_id)
    return Caller(
        role=role if role in ROLES else INTERNAL_USER_VIEWER,
        user_id=user_id,
        key_hash=digest,
        teams=teams,
        organization_ids=frozenset(orgs),
    )

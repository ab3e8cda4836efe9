"""Who may do what with a virtual key (details in ``docs/admin-api.md``):

* proxy_admin: everything; proxy_admin_viewer: read everything.
* team admin: every key of their teams (create, update, block, unblock, regenerate, delete),
  owned by any member of the team (themselves when they name nobody).
* the owner (the key's ``user_id``): read, block, regenerate, delete; create keys owned by
  themselves (optionally in a team they belong to); update only to *tighten* limits.

A key made by anyone but a proxy_admin is owned by a user, so on a team key the owner's
in-team member budget (``max_budget_in_team``) applies with the team's budget
(docs/enforcement.md, "Team keys").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from spendgate.admin.roles import Caller
from spendgate.admin.schemas import KeyGenerate, KeyUpdate, parse_expiry_duration
from spendgate.entities.codec import nanos
from spendgate.entities.keys import ALL_MODELS, KEY_SCOPE
from spendgate.entities.repository import KeyFilter
from spendgate.entities.service import EntityService
from spendgate.http.errors import PermissionDenied
from spendgate.stores.database.models import User, VirtualKey

__all__ = [
    "check_create_rights",
    "check_update_rights",
    "expiry",
    "key_filter",
    "may_manage_key",
    "may_read_key",
    "within_owner_models",
]

# Fields an owner (who is not a team admin of the key's team) may send to /key/update.
_OWNER_FREE = frozenset({"key", "key_alias", "metadata", "tags", "new_key"})
_OWNER_TIGHTEN = ("max_budget", "soft_budget", "tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")
_ADMIN_ONLY = ("organization_id", "budget_id")
_TEAM_ADMIN_ONLY = ("end_user_id", "temp_budget_increase", "temp_budget_expiry")


def expiry(now: datetime, duration: str | None) -> datetime | None:
    """When a key given ``duration`` now expires (None: never)."""
    return None if duration is None else now + timedelta(seconds=parse_expiry_duration(duration))


def key_filter(caller: Caller, **equal: Any) -> KeyFilter:
    """The keys a listing shows the caller (every key to those who read all; else their own
    and their admin teams'), narrowed by ``equal`` (:class:`KeyFilter`'s other fields)."""
    return KeyFilter(
        restricted=not caller.reads_all, visible_to=caller.user_id, admin_teams=caller.admin_teams, **equal
    )


def may_manage_key(caller: Caller, vk: VirtualKey) -> bool:
    return caller.admins_team(vk.team_id) or (caller.user_id is not None and vk.user_id == caller.user_id)


def may_read_key(caller: Caller, vk: VirtualKey) -> bool:
    return (
        caller.reads_all
        or may_manage_key(caller, vk)
        or (vk.team_id is not None and caller.teams.get(vk.team_id) == "admin")
    )


def _forbid(field: str, why: str) -> PermissionDenied:
    return PermissionDenied(f"{field}: {why}")


def check_create_rights(caller: Caller, body: KeyGenerate) -> None:
    if caller.is_admin:
        return
    given = body.model_fields_set
    for name in _ADMIN_ONLY:
        if name in given and getattr(body, name) is not None:
            raise _forbid(name, "only a proxy_admin may set it")
    if body.team_id is not None and caller.admins_team(body.team_id):
        return  # a team admin creates keys for any member of the team (default: themselves)
    if body.team_id is not None and not caller.in_team(body.team_id):
        raise _forbid("team_id", f"you are not a member of team {body.team_id!r}")
    if body.user_id is not None and body.user_id != caller.user_id:
        raise _forbid("user_id", "you may only create keys owned by yourself")
    for name in _TEAM_ADMIN_ONLY:
        if name in given and getattr(body, name) is not None:
            raise _forbid(name, "only a proxy_admin or the team's admin may set it")


def _tightens(old: Any, new: Any) -> bool:
    return new is not None and (old is None or new <= old)


def _check_owner_update(vk: VirtualKey, body: KeyUpdate) -> None:
    """An owner who is not an admin of the key's team may only tighten their key."""
    for name in sorted(body.model_fields_set):
        value = getattr(body, name)
        if name in _OWNER_FREE:
            continue
        if name in _OWNER_TIGHTEN:
            column = f"{name}_nanos" if name in ("max_budget", "soft_budget") else name
            new = nanos(value) if name in ("max_budget", "soft_budget") else value
            if not _tightens(getattr(vk, column), new):
                raise _forbid(name, "you may lower this limit on your own key, not raise or remove it")
        elif name == "blocked":
            if value is not True:
                raise _forbid("blocked", "only an admin may unblock a key")
        elif name == "models":
            old = vk.models or []
            if not value or (old and any(m not in old for m in value)):
                raise _forbid("models", "you may only narrow the models of your own key")
        elif name in ("duration", "budget_limits"):
            continue  # compared with the stored expiry / windows below
        else:
            raise _forbid(name, "only a proxy_admin or the team's admin may change it")


async def _check_owner_windows(svc: EntityService, vk: VirtualKey, body: KeyUpdate) -> None:
    stored = (await svc.repo.windows(KEY_SCOPE.name, [vk.key_id]))[vk.key_id]
    new = {w.budget_duration: nanos(w.max_budget) for w in body.budget_limits or ()}
    for w in stored:
        if w.budget_duration not in new or not _tightens(w.max_budget_nanos, new[w.budget_duration]):
            raise _forbid(
                "budget_limits", f"you may not remove or raise the {w.budget_duration} window of your key"
            )


async def check_update_rights(svc: EntityService, caller: Caller, vk: VirtualKey, body: KeyUpdate) -> None:
    """403 unless ``caller`` may make this change to ``vk``."""
    if not may_manage_key(caller, vk):
        raise PermissionDenied("you may not change this key")
    given = body.model_fields_set
    if not caller.admins_team(vk.team_id):
        _check_owner_update(vk, body)
        if "budget_limits" in given:
            await _check_owner_windows(svc, vk, body)
        if "duration" in given:
            new_expiry = expiry(svc.now, body.duration)
            if vk.expires is not None and (new_expiry is None or new_expiry > vk.expires):
                raise _forbid("duration", "you may shorten the life of your own key, not extend it")
    elif not caller.is_admin:
        for name in _ADMIN_ONLY:
            if name in given:
                raise _forbid(name, "only a proxy_admin may change it")
        if "team_id" in given and not caller.admins_team(body.team_id):
            raise _forbid("team_id", "you may only move a key to a team you administer")


async def within_owner_models(svc: EntityService, body: KeyGenerate) -> KeyGenerate:
    """A key made by a non-admin for a user restricted to some models gets at most those
    models (none given: exactly those), so a new key never widens what its owner may use."""
    if body.user_id is None:
        return body
    owner = await svc.repo.get(User, body.user_id)
    allowed = (owner.models or []) if owner is not None else []
    if not allowed or ALL_MODELS in allowed:
        return body
    if not body.models:
        return body.model_copy(update={"models": list(allowed)})
    outside = [m for m in body.models if m not in allowed]
    if outside:
        raise _forbid("models", f"{outside} are not among user {body.user_id!r}'s models")
    return body

"""Virtual keys as stored: finding one by raw key or hash, making the raw key and what is
shown of it, the rules a key's references obey, re-keying and deleting.

What is stored of a raw key: its SHA-256 hash (``token``; the first hash is also its
stable ``key_id``) and a display name that reveals at most a fifth of the secret
(:func:`key_display`). Deleting keys returns both names of each, the ones the gateway's
caches know them by.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

from spendgate.core.keys import hash_key
from spendgate.core.scopes import scope_type
from spendgate.entities.errors import EntityConflict, EntityInvalid, EntityNotFound
from spendgate.entities.service import BUDGETS, CUSTOMERS, ORGANIZATIONS, TEAMS, USERS, EntityService
from spendgate.stores.database.models import Team, TeamMembership, VirtualKey

__all__ = [
    "ALL_MODELS",
    "KEY_SCOPE",
    "check_alias",
    "check_key_refs",
    "check_member_of_team",
    "delete_keys",
    "delete_keys_of",
    "find_key",
    "hash_in_use",
    "key_by_alias",
    "key_display",
    "new_key",
    "new_raw_key",
    "require_key",
    "retoken_key",
]

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_LEAD = "sk-"

KEY_SCOPE = scope_type("key")
"""The scope type a key is limited as (its budget windows are keyed by its ``key_id``)."""

ALL_MODELS = "all-proxy-models"
"""A model list holding this allows every model."""


def new_raw_key() -> str:
    """A new raw key: ``sk-`` and 32 random bytes, URL-safe base64."""
    return _KEY_LEAD + secrets.token_urlsafe(32)


def key_display(raw: str) -> tuple[str, str]:
    """``(key_prefix, key_name)`` shown instead of the key, revealing at most a fifth of
    its secret part: ``sk-AbCd`` and ``sk-...wxyz`` for a generated key (43 secret
    characters); a shorter key shows no suffix (``sk-AbCd...``), and fewer leading
    characters below 20."""
    lead = _KEY_LEAD if raw.startswith(_KEY_LEAD) else ""
    secret = raw[len(lead) :]
    head = min(4, len(secret) // 5)
    prefix = lead + secret[:head]
    if len(secret) >= 40:  # 4 + 4 shown of 40 or more
        return prefix, f"{lead}...{secret[-4:]}"
    return prefix, f"{prefix}..."


async def new_key(
    svc: EntityService, raw: str, *, team_id: str | None, organization_id: str | None
) -> VirtualKey:
    """A new (not yet inserted) key row for the raw key ``raw`` (409 if its hash is in
    use); a team key names no organization of its own takes its team's."""
    token = hash_key(raw)
    if await hash_in_use(svc, token):
        raise EntityConflict("this key already exists", param="key")
    prefix, name = key_display(raw)
    vk = VirtualKey(token=token, key_id=token, key_prefix=prefix, key_name=name, blocked=False)
    if team_id is not None and organization_id is None:
        team = await svc.repo.get(Team, team_id)
        vk.organization_id = team.organization_id if team else None
    return vk


async def find_key(svc: EntityService, ref: str) -> VirtualKey | None:
    """The key given as its hash (token) or as the raw key."""
    if _HASH_RE.match(ref):
        found = await svc.repo.get(VirtualKey, ref)
        if found is not None:
            return found
    return await svc.repo.get(VirtualKey, hash_key(ref))


async def require_key(svc: EntityService, ref: str, param: str = "key") -> VirtualKey:
    found = await find_key(svc, ref)
    if found is None:
        raise EntityNotFound("key not found", param=param)
    return found


async def key_by_alias(svc: EntityService, alias: str, param: str) -> VirtualKey:
    found = await svc.repo.key_by_alias(alias)
    if found is None:
        raise EntityNotFound(f"no key with key_alias {alias!r}", param=param)
    return found


async def hash_in_use(svc: EntityService, token: str, *, but: str | None = None) -> bool:
    """Whether ``token`` is a key's current hash or another key's stable id (a retired
    hash: reusing it would make two keys indistinguishable in old spend events)."""
    taken = await svc.repo.key_taken_by(token)
    return taken is not None and taken != but


async def check_alias(svc: EntityService, alias: str | None, token: str | None) -> None:
    """409 if another key than ``token`` has ``alias``."""
    if alias is None:
        return
    other = await svc.repo.token_of_alias(alias)
    if other is not None and other != token:
        raise EntityConflict(f"key_alias {alias!r} is already used by another key", param="key_alias")


async def check_key_refs(svc: EntityService, body: Any, vk: VirtualKey | None) -> None:
    """404 for unknown users, teams, organizations, customers, budgets; the key's team must
    be in its organization, and its models among the team's (422)."""
    await svc.check_refs(
        body,
        [
            ("user_id", USERS),
            ("organization_id", ORGANIZATIONS),
            ("end_user_id", CUSTOMERS),
            ("budget_id", BUDGETS),
        ],
    )
    given = body.model_fields_set
    team_id = body.team_id if "team_id" in given else (vk.team_id if vk else None)
    if team_id is None:
        return
    team: Team = await svc.require(TEAMS, team_id, "team_id")
    org = body.organization_id if "organization_id" in given else (vk.organization_id if vk else None)
    if team.organization_id and org and org != team.organization_id:
        raise EntityInvalid(
            f"team {team_id!r} belongs to organization {team.organization_id!r}, not {org!r}",
            param="organization_id",
        )
    models = body.models if "models" in given else (vk.models if vk else None)
    allowed = team.models or []
    if models and allowed and ALL_MODELS not in allowed:
        outside = [m for m in models if m not in allowed]
        if outside:
            raise EntityInvalid(f"models {outside} are not among team {team_id!r}'s models", param="models")


async def check_member_of_team(svc: EntityService, user_id: str | None, team_id: str | None) -> None:
    """422 unless the user is a member of the team (either None: nothing to check)."""
    if user_id is None or team_id is None:
        return
    if await svc.repo.get(TeamMembership, (user_id, team_id)) is None:
        raise EntityInvalid(f"user {user_id!r} is not a member of team {team_id!r}", param="user_id")


async def retoken_key(svc: EntityService, vk: VirtualKey, raw: str) -> VirtualKey:
    """Give ``vk`` the raw key ``raw`` (same ``key_id``, limits, windows and spend; the old
    raw key stops working); 409 if its hash is in use. Returns the key reloaded."""
    token = hash_key(raw)
    if token == vk.token or await hash_in_use(svc, token, but=vk.key_id):
        raise EntityConflict("new_key is already in use", param="new_key")
    prefix, name = key_display(raw)
    await svc.repo.retoken_key(vk.token, token, prefix=prefix, name=name, now=svc.now, by=svc.by)
    svc.repo.forget(vk)
    return await require_key(svc, token)


async def delete_keys(svc: EntityService, rows: Sequence[VirtualKey]) -> list[str]:
    """Delete the keys and their windows; returns their hashes, then their stable ids."""
    tokens = [vk.token for vk in rows]
    await svc.repo.delete_windows(KEY_SCOPE.name, [vk.key_id for vk in rows])
    await svc.repo.delete_keys(tokens)
    return [*tokens, *(vk.key_id for vk in rows)]


async def delete_keys_of(
    svc: EntityService,
    *,
    team_ids: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
) -> list[str]:
    """Delete every key in ``team_ids`` of ``user_ids`` (None: any) and its windows;
    returns their hashes and stable ids (the names the gateway's caches know them by)."""
    found = await svc.repo.key_ids(team_ids=team_ids, user_ids=user_ids)
    tokens = [token for token, _ in found]
    await svc.repo.delete_windows(KEY_SCOPE.name, [key_id for _, key_id in found])
    await svc.repo.delete_keys(tokens)
    return [*tokens, *(key_id for _, key_id in found)]

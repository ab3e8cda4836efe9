"""What deleting an entity takes with it, and what forbids it.

* a **user** takes their keys, team memberships (with the member budgets they own),
  organization memberships and budget windows;
* a **team** takes its keys, memberships and windows, but not while customers belong to it
  (un-owning them silently would let any key bill them: 409);
* an **organization** goes only when no team, user, key or customer is left in it (409),
  with its memberships and windows;
* a **customer** goes only when no key is bound to it (409: unbinding silently would let
  those keys name any customer);
* a **budget profile** goes only when nothing points at it (409).

Each function checks every id exists first (404 naming ``param``) and returns the names of
the keys it deleted (hashes, then stable ids: what the gateway's caches know them by).
"""

from __future__ import annotations

from collections.abc import Sequence

from spendgate.entities.errors import EntityConflict
from spendgate.entities.keys import delete_keys_of
from spendgate.entities.memberships import delete_memberships
from spendgate.entities.service import BUDGETS, CUSTOMERS, ORGANIZATIONS, TEAMS, USERS, EntityService

__all__ = ["delete_budget", "delete_customers", "delete_organizations", "delete_teams", "delete_users"]


async def delete_users(svc: EntityService, ids: Sequence[str], param: str) -> list[str]:
    await svc.require_all(USERS, ids, param)
    changed = await delete_keys_of(svc, user_ids=ids)
    await delete_memberships(svc, user_ids=ids)
    await svc.repo.delete_org_memberships_of_users(ids)
    await svc.delete(USERS, ids)
    return changed


async def delete_teams(svc: EntityService, ids: Sequence[str], param: str) -> list[str]:
    await svc.require_all(TEAMS, ids, param)
    owned = await svc.repo.count_customers_of_teams(ids)
    if owned:
        raise EntityConflict(f"the team still has {owned} customers: move or delete them first", param=param)
    changed = await delete_keys_of(svc, team_ids=ids)
    await delete_memberships(svc, team_ids=ids)
    await svc.delete(TEAMS, ids)
    return changed


async def delete_organizations(svc: EntityService, ids: Sequence[str], param: str) -> list[str]:
    await svc.require_all(ORGANIZATIONS, ids, param)
    owned = await svc.repo.organization_owns(ids)
    if owned is not None:
        count, what = owned
        raise EntityConflict(
            f"the organization still has {count} {what}: move or delete them first", param=param
        )
    await svc.repo.delete_org_memberships_of_orgs(ids)
    await svc.delete(ORGANIZATIONS, ids)
    return []


async def delete_customers(svc: EntityService, ids: Sequence[str], param: str) -> list[str]:
    await svc.require_all(CUSTOMERS, ids, param)
    bound = await svc.repo.count_keys_bound_to(ids)
    if bound:
        raise EntityConflict(
            f"{bound} keys are bound to these customers: delete or rebind them first", param=param
        )
    await svc.delete(CUSTOMERS, ids)
    return []


async def delete_budget(svc: EntityService, budget_id: str, param: str) -> list[str]:
    budget = await svc.require(BUDGETS, budget_id, param)
    used = await svc.repo.budget_used_by(budget_id)
    if used:
        raise EntityConflict(f"budget {budget_id!r} is still used by {used}", param=param)
    await svc.repo.remove(budget)
    return []

"""The role matrix: every management endpoint × every kind of caller → the expected status.

Callers: the master key; users with role proxy_admin and proxy_admin_viewer; ``tadmin``,
an internal_user who is admin of team t1; ``member``, an internal_user in t1 who owns the
target key; ``outsider``, an internal_user in no team. Each case runs on its own copy of a
seeded database, so writes never leak into the next case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from admin_helpers import Api, admin_client, copy_database
from role_helpers import NO, OK, T1_MEMBERS, World, add_callers, call_on_copy, matrix, seeded_world
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import create_engine

ROLES = ("master", "admin", "viewer", "tadmin", "member", "outsider")
ADMIN_WRITE = (OK, OK, NO, NO, NO, NO)
ADMIN_READ = (OK, OK, OK, NO, NO, NO)
EVERYONE = (OK,) * 6

# (id, method, path, body or query, expected status per role in ROLES order)
CASES: list[tuple[str, str, str, dict[str, Any] | None, tuple[int, ...]]] = [
    ("key-generate-own", "POST", "/key/generate", {}, (OK, OK, NO, OK, OK, OK)),
    (
        "key-generate-for-t1-admin",
        "POST",
        "/key/generate",
        {"team_id": "t1", "user_id": "tadmin"},
        (OK, OK, NO, OK, NO, NO),
    ),
    ("key-generate-own-in-t1", "POST", "/key/generate", {"team_id": "t1"}, (OK, OK, NO, OK, OK, NO)),
    (
        "key-generate-temp-budget",
        "POST",
        "/key/generate",
        {"temp_budget_increase": 1, "temp_budget_expiry": "2031-01-01T00:00:00Z"},
        (OK, OK, NO, NO, NO, NO),
    ),
    (
        "key-update-lower",
        "POST",
        "/key/update",
        {"key": "{target}", "max_budget": 1},
        (OK, OK, NO, OK, OK, NO),
    ),
    (
        "key-update-raise",
        "POST",
        "/key/update",
        {"key": "{target}", "max_budget": 50},
        (OK, OK, NO, OK, NO, NO),
    ),
    (
        "key-update-unlimit",
        "POST",
        "/key/update",
        {"key": "{target}", "max_budget": None},
        (OK, OK, NO, OK, NO, NO),
    ),
    (
        "key-update-owner",
        "POST",
        "/key/update",
        {"key": "{target}", "user_id": "outsider"},
        (OK, OK, NO, 422, NO, NO),
    ),
    ("key-info", "GET", "/key/info", {"key": "{target}"}, (OK, OK, OK, OK, OK, NO)),
    ("key-list", "GET", "/key/list", {}, EVERYONE),
    ("key-delete", "POST", "/key/delete", {"keys": ["{target}"]}, (OK, OK, NO, OK, OK, NO)),
    ("key-regenerate", "POST", "/key/regenerate", {"key": "{target}"}, (OK, OK, NO, OK, OK, NO)),
    ("key-block", "POST", "/key/block", {"key": "{target}"}, (OK, OK, NO, OK, OK, NO)),
    ("key-unblock", "POST", "/key/unblock", {"key": "{target}"}, (OK, OK, NO, OK, NO, NO)),
    ("user-new", "POST", "/user/new", {"user_id": "new-user"}, ADMIN_WRITE),
    ("user-info", "GET", "/user/info", {"user_id": "member"}, (OK, OK, OK, OK, OK, NO)),
    (
        "user-update-alias",
        "POST",
        "/user/update",
        {"user_id": "member", "user_alias": "M"},
        (OK, OK, NO, NO, OK, NO),
    ),
    (
        "user-update-lower",
        "POST",
        "/user/update",
        {"user_id": "member", "max_budget": 1},
        (OK, OK, NO, NO, OK, NO),
    ),
    ("user-update-raise", "POST", "/user/update", {"user_id": "member", "max_budget": 100}, ADMIN_WRITE),
    (
        "user-update-role",
        "POST",
        "/user/update",
        {"user_id": "member", "user_role": "proxy_admin"},
        ADMIN_WRITE,
    ),
    ("user-delete", "POST", "/user/delete", {"user_ids": ["member"]}, ADMIN_WRITE),
    ("user-list", "GET", "/user/list", {}, EVERYONE),
    ("team-new", "POST", "/team/new", {"team_id": "t9"}, ADMIN_WRITE),
    ("team-info", "GET", "/team/info", {"team_id": "t1"}, (OK, OK, OK, OK, OK, NO)),
    (
        "team-update-alias",
        "POST",
        "/team/update",
        {"team_id": "t1", "team_alias": "T"},
        (OK, OK, NO, OK, NO, NO),
    ),
    ("team-update-budget", "POST", "/team/update", {"team_id": "t1", "max_budget": 1}, ADMIN_WRITE),
    ("team-delete", "POST", "/team/delete", {"team_ids": ["t1"]}, ADMIN_WRITE),
    ("team-list", "GET", "/team/list", {}, EVERYONE),
    (
        "team-member-add",
        "POST",
        "/team/member_add",
        {"team_id": "t1", "member": {"user_id": "outsider"}},
        (OK, OK, NO, OK, NO, NO),
    ),
    (
        "team-member-update",
        "POST",
        "/team/member_update",
        {"team_id": "t1", "user_id": "member", "max_budget_in_team": 1},
        (OK, OK, NO, OK, NO, NO),
    ),
    (
        "team-member-delete",
        "POST",
        "/team/member_delete",
        {"team_id": "t1", "user_id": "member"},
        (OK, OK, NO, OK, NO, NO),
    ),
    ("org-new", "POST", "/organization/new", {"organization_alias": "N"}, ADMIN_WRITE),
    ("org-info", "GET", "/organization/info", {"organization_id": "o1"}, (OK, OK, OK, NO, OK, NO)),
    ("org-update", "PATCH", "/organization/update", {"organization_id": "o1", "max_budget": 1}, ADMIN_WRITE),
    ("org-delete", "DELETE", "/organization/delete", {"organization_ids": ["o2"]}, ADMIN_WRITE),
    ("org-list", "GET", "/organization/list", {}, EVERYONE),
    ("customer-new", "POST", "/customer/new", {"user_id": "c9"}, ADMIN_WRITE),
    ("customer-info", "GET", "/customer/info", {"end_user_id": "c1"}, ADMIN_READ),
    ("customer-update", "POST", "/customer/update", {"user_id": "c1", "alias": "x"}, ADMIN_WRITE),
    ("customer-delete", "POST", "/customer/delete", {"user_ids": ["c1"]}, ADMIN_WRITE),
    ("customer-list", "GET", "/customer/list", {}, ADMIN_READ),
    ("customer-block", "POST", "/customer/block", {"user_ids": ["c1"]}, ADMIN_WRITE),
    ("customer-unblock", "POST", "/customer/unblock", {"user_ids": ["c1"]}, ADMIN_WRITE),
    ("budget-new", "POST", "/budget/new", {"budget_id": "b9"}, ADMIN_WRITE),
    ("budget-info", "POST", "/budget/info", {"budgets": ["b1"]}, ADMIN_READ),
    ("budget-update", "POST", "/budget/update", {"budget_id": "b1", "max_budget": 1}, ADMIN_WRITE),
    ("budget-delete", "POST", "/budget/delete", {"id": "b1"}, ADMIN_WRITE),
    ("budget-list", "GET", "/budget/list", {}, ADMIN_READ),
    # no enforcement is configured here: allowed callers get 501, the others 403
    ("budget-explain", "POST", "/budget/explain", {"key": "{target}"}, (501, 501, 501, 501, 501, NO)),
]

PARAMS = matrix(CASES, ROLES, lambda case: case[4])


@pytest.fixture(scope="session")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A seeded database and the raw keys of its callers."""

    async def seed(api: Api, _engine: AsyncEngine) -> dict[str, str]:
        for org in ("o1", "o2"):
            await api.ok("POST", "/organization/new", {"organization_id": org, "organization_alias": org})
        keys = await add_callers(api, {"member": {"organization_id": "o1", "max_budget": 10}})
        await api.ok(
            "POST", "/team/new", {"team_id": "t1", "organization_id": "o1", "members_with_roles": T1_MEMBERS}
        )
        target = await api.ok(
            "POST", "/key/generate", {"user_id": "member", "team_id": "t1", "max_budget": 5}
        )
        keys["target"] = target["key"]
        keys["userless"] = (await api.ok("POST", "/key/generate", {"key_alias": "service"}))["key"]
        await api.ok("POST", "/customer/new", {"user_id": "c1"})
        await api.ok("POST", "/budget/new", {"budget_id": "b1"})
        return keys

    return seeded_world(sqlite_template, tmp_path_factory.mktemp("admin-world"), seed)


def _fill(value: Any, keys: dict[str, str]) -> Any:
    if isinstance(value, str):
        return keys["target"] if value == "{target}" else value
    if isinstance(value, list):
        return [_fill(v, keys) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, keys) for k, v in value.items()}
    return value


async def _call(world: World, tmp_path: Path, case: Any, key: str | None) -> tuple[int, Any]:
    _, method, route, payload, _ = case
    return await call_on_copy(world, tmp_path, method, route, _fill(payload, world[1]), key)


@pytest.mark.parametrize(("case", "role", "expected"), PARAMS)
async def test_role_matrix(world: World, tmp_path: Path, case: Any, role: str, expected: int) -> None:
    status, body = await _call(world, tmp_path, case, world[1][role])
    assert status == expected, body
    if status == NO:
        assert body["error"]["type"] == "permission_denied"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_unknown_missing_and_userless_keys(world: World, tmp_path: Path, case: Any) -> None:
    status, body = await _call(world, tmp_path, case, "sk-not-a-key")
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = await _call(world, tmp_path, case, None)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = await _call(world, tmp_path, case, world[1]["userless"])
    assert status == 403 and body["error"]["code"] == "no_role"


async def test_lists_are_scoped_to_what_the_caller_may_see(world: World, tmp_path: Path) -> None:
    path, keys = world
    engine = create_engine(copy_database(path, tmp_path / "lists.db"))
    try:
        async with admin_client(engine) as client:
            api = Api(client)
            from spendgate.core.keys import hash_key

            def tokens(data: Any) -> set[str]:
                return set(data["keys"])

            everything = tokens(await api.ok("GET", "/key/list", params={"size": 100}))
            assert len(everything) == 7
            assert tokens(await api.ok("GET", "/key/list", key=keys["outsider"])) == {
                hash_key(keys["outsider"])
            }
            assert tokens(await api.ok("GET", "/key/list", key=keys["member"])) == {
                hash_key(keys["member"]),
                hash_key(keys["target"]),
            }
            # a team admin sees their own keys and the team's keys
            assert tokens(await api.ok("GET", "/key/list", key=keys["tadmin"])) == {
                hash_key(keys["tadmin"]),
                hash_key(keys["target"]),
            }
            users = await api.ok("GET", "/user/list", key=keys["outsider"])
            assert [u["user_id"] for u in users["users"]] == ["outsider"]
            users = await api.ok("GET", "/user/list", key=keys["tadmin"])
            assert sorted(u["user_id"] for u in users["users"]) == ["member", "tadmin"]
            assert await api.ok("GET", "/team/list", key=keys["outsider"]) == []
            assert [t["team_id"] for t in await api.ok("GET", "/team/list", key=keys["member"])] == ["t1"]
            assert [
                o["organization_id"] for o in await api.ok("GET", "/organization/list", key=keys["member"])
            ] == ["o1"]
            # the default /key/info is the caller's own key
            mine = await api.ok("GET", "/key/info", key=keys["outsider"])
            assert mine["info"]["user_id"] == "outsider"
            # an internal user's new key is owned by them, whatever they send
            created = await api.ok("POST", "/key/generate", {"key_alias": "mine"}, key=keys["outsider"])
            assert created["user_id"] == "outsider"
            # a member reading the team sees only their own keys in it
            info = await api.ok("GET", "/team/info", params={"team_id": "t1"}, key=keys["member"])
            assert [k["user_id"] for k in info["keys"]] == ["member"]
    finally:
        await engine.dispose()


async def test_internal_user_keys_stay_within_their_models(sqlite_api: Api) -> None:
    api = sqlite_api
    user = await api.ok("POST", "/user/new", {"user_id": "ria", "models": ["gpt-4o-mini"]})
    mine = await api.ok("POST", "/key/generate", {}, key=user["key"])
    assert mine["models"] == ["gpt-4o-mini"]  # not "all models"
    status, err = await api.post("/key/generate", {"models": ["gpt-4o"]}, key=user["key"])
    assert status == 403 and err["error"]["message"].startswith("models")
    status, _ = await api.post("/key/update", {"key": mine["key"], "models": ["gpt-4o"]}, key=user["key"])
    assert status == 403
    # an admin decides for themselves
    assert (await api.ok("POST", "/key/generate", {"user_id": "ria", "models": ["gpt-4o"]}))["models"] == [
        "gpt-4o"
    ]


# -- the spend endpoints (issue #13): the role matrix with a seventh caller, ``userless`` (a key
# of no user: it may read its own spend). Naming another's key, user or team is a 403.
SPEND_ROLES = (*ROLES, "userless")
ALL_SPEND = (OK,) * 7
SPEND_ADMIN = (OK, OK, OK, NO, NO, NO, NO)
TARGET_KEY = (OK, OK, OK, OK, OK, NO, NO)  # the target key is member's, in t1 (tadmin's team)
MEMBER_USER = (OK, OK, OK, NO, OK, NO, NO)
DAYS = {"start_date": "2025-03-01", "end_date": "2025-03-31"}
SPEND_CASES: list[tuple[str, str, dict[str, Any], tuple[int, ...]]] = [
    ("spend-logs", "/spend/logs", {}, ALL_SPEND),
    ("spend-logs-summary", "/spend/logs", DAYS, ALL_SPEND),
    ("spend-logs-key", "/spend/logs", {"api_key": "{target}"}, TARGET_KEY),
    ("spend-logs-user", "/spend/logs", {"user_id": "member"}, MEMBER_USER),
    ("spend-keys", "/spend/keys", {}, ALL_SPEND),
    ("spend-users", "/spend/users", {}, ALL_SPEND),
    ("spend-users-member", "/spend/users", {"user_id": "member"}, MEMBER_USER),
    ("spend-tags", "/spend/tags", {}, SPEND_ADMIN),
    ("global-spend", "/global/spend", {}, ALL_SPEND),
    ("global-spend-logs", "/global/spend/logs", {}, ALL_SPEND),
    ("global-spend-logs-key", "/global/spend/logs", {"api_key": "{target}"}, TARGET_KEY),
    ("global-spend-keys", "/global/spend/keys", {}, ALL_SPEND),
    ("global-spend-teams", "/global/spend/teams", {}, ALL_SPEND),
    ("global-spend-models", "/global/spend/models", {}, ALL_SPEND),
    ("global-spend-tags", "/global/spend/tags", {}, SPEND_ADMIN),
    ("report-teams", "/global/spend/report", DAYS, ALL_SPEND),
    ("report-team-t1", "/global/spend/report", {**DAYS, "team_id": "t1"}, (OK, OK, OK, OK, NO, NO, NO)),
    ("report-customers", "/global/spend/report", {**DAYS, "group_by": "customer"}, SPEND_ADMIN),
    ("report-customer-c1", "/global/spend/report", {**DAYS, "customer_id": "c1"}, SPEND_ADMIN),
    ("report-keys", "/global/spend/report", {**DAYS, "group_by": "api_key"}, ALL_SPEND),
    ("report-key-target", "/global/spend/report", {**DAYS, "api_key": "{target}"}, TARGET_KEY),
    ("report-user-member", "/global/spend/report", {**DAYS, "internal_user_id": "member"}, MEMBER_USER),
    ("budget-tightest", "/budget/tightest", {}, ALL_SPEND),
]


@pytest.mark.parametrize(("case", "role", "expected"), matrix(SPEND_CASES, SPEND_ROLES, lambda case: case[3]))
async def test_spend_role_matrix(world: World, tmp_path: Path, case: Any, role: str, expected: int) -> None:
    name, path, params, _ = case
    status, body = await _call(world, tmp_path, (name, "GET", path, params, ()), world[1][role])
    assert status == expected, body
    if status == NO:
        assert body["error"]["type"] == "permission_denied"
    status, body = await _call(world, tmp_path, (name, "GET", path, params, ()), "sk-not-a-key")
    assert status == 401 and body["error"]["type"] == "authentication_error"

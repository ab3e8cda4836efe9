"""``search`` on the list endpoints (spendgate's own): a fragment of an id, alias, name or
e-mail, case-insensitive; LIKE's wildcards in it match themselves; the role rules still
decide what a listing shows (SQLite, then PostgreSQL)."""

from __future__ import annotations

from typing import Any

from admin_helpers import Api


def _ids(items: list[dict[str, Any]], field: str) -> list[str]:
    return sorted(str(i[field]) for i in items)


async def test_teams_users_and_customers_by_a_fragment(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t-growth", "team_alias": "Growth Marketing"})
    await api.ok("POST", "/team/new", {"team_id": "t-infra", "team_alias": "Platform"})
    await api.ok("POST", "/team/new", {"team_id": "t-odd", "team_alias": "100%_done"})
    teams = await api.ok("GET", "/team/list", params={"search": "MARKET"})
    assert _ids(teams, "team_id") == ["t-growth"]
    assert _ids(await api.ok("GET", "/team/list", params={"search": "T-INF"}), "team_id") == ["t-infra"]
    assert _ids(await api.ok("GET", "/team/list", params={"search": "%_"}), "team_id") == ["t-odd"]
    assert _ids(await api.ok("GET", "/team/list", params={"search": "_"}), "team_id") == ["t-odd"]
    assert len(await api.ok("GET", "/team/list")) == 3

    for user_id, email, alias in (
        ("u-ann", "ann@example.com", "Ann Lee"),
        ("u-bob", "bob@corp.test", None),
        ("u-cy", None, "Cyrus"),
    ):
        body = {"user_id": user_id, "user_email": email, "user_alias": alias, "auto_create_key": False}
        await api.ok("POST", "/user/new", {k: v for k, v in body.items() if v is not None})
    by_email = await api.ok("GET", "/user/list", params={"search": "CORP.T"})
    assert (_ids(by_email["users"], "user_id"), by_email["total"]) == (["u-bob"], 1)
    by_alias = await api.ok("GET", "/user/list", params={"search": "cyr"})
    assert _ids(by_alias["users"], "user_id") == ["u-cy"]
    by_id = await api.ok("GET", "/user/list", params={"search": "u-", "page_size": 2})
    assert (by_id["total"], by_id["total_pages"], len(by_id["users"])) == (3, 2, 2)

    await api.ok("POST", "/customer/new", {"user_id": "acme-eu", "alias": "Acme Europe"})
    await api.ok("POST", "/customer/new", {"user_id": "globex", "alias": "Globex"})
    assert _ids(await api.ok("GET", "/customer/list", params={"search": "EUROPE"}), "user_id") == ["acme-eu"]
    assert _ids(await api.ok("GET", "/end_user/list", params={"search": "glob"}), "user_id") == ["globex"]
    assert await api.ok("GET", "/customer/list", params={"search": "nobody"}) == []


async def test_search_keeps_the_role_rules_and_is_bounded(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t-mine"})
    await api.ok("POST", "/team/new", {"team_id": "t-theirs"})
    me = await api.ok(
        "POST", "/user/new", {"user_id": "member", "user_role": "internal_user", "teams": ["t-mine"]}
    )
    mine = await api.ok("GET", "/team/list", params={"search": "t-"}, key=me["key"])
    assert _ids(mine, "team_id") == ["t-mine"]  # not t-theirs, though it matches
    status, err = await api.get("/team/list", params={"search": ""})
    assert status == 422 and err["error"]["param"] == "search"
    status, err = await api.get("/customer/list", params={"search": "x" * 256})
    assert status == 422 and err["error"]["param"] == "search"


async def test_keys_by_a_fragment_of_alias_name_id_user_or_team(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t-search"})
    billing = await api.ok("POST", "/key/generate", {"key_alias": "Billing-Prod", "team_id": "t-search"})
    other = await api.ok("POST", "/key/generate", {"key_alias": "chat-staging"})

    async def found(**params: Any) -> list[str]:
        answer = await api.ok("GET", "/key/list", params={"return_full_object": "true", **params})
        assert answer["total_count"] == len(answer["keys"])
        return sorted(k["token"] for k in answer["keys"])

    assert await found(search="LING-pr") == [billing["token"]]
    assert await found(search="staging") == [other["token"]]
    assert await found(search="T-SEARCH") == [billing["token"]]  # its team id
    assert await found(search=other["token"][5:20]) == [other["token"]]  # part of its id
    assert await found(search=other["key_name"][-4:]) == [other["token"]]  # sk-...abcd
    assert await found(search="-", team_id="t-search") == [billing["token"]]  # with the exact filters
    assert await found(search="nothing-like-it") == []

"""/team/block and /team/unblock (LiteLLM's ``{"team_id"}``): a proxy_admin's, 404 for an
unknown team, and the team's ``blocked`` read back."""

from __future__ import annotations

from admin_helpers import Api


async def test_block_and_unblock_a_team(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t-block", "team_alias": "Blockers"})
    blocked = await api.ok("POST", "/team/block", {"team_id": "t-block"})
    assert (blocked["team_id"], blocked["blocked"]) == ("t-block", True)
    info = await api.ok("GET", "/team/info", params={"team_id": "t-block"})
    assert info["team_info"]["blocked"] is True
    assert (await api.ok("POST", "/team/unblock", {"team_id": "t-block"}))["blocked"] is False
    assert (await api.ok("GET", "/team/info", params={"team_id": "t-block"}))["team_info"]["blocked"] is False

    status, err = await api.post("/team/block", {"team_id": "nobody"})
    assert status == 404 and err["error"]["param"] == "team_id"
    status, err = await api.post("/team/block", {})
    assert status == 422 and err["error"]["param"] == "team_id"


async def test_only_a_proxy_admin_blocks_a_team(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t-own"})
    lead = await api.ok(
        "POST",
        "/user/new",
        {
            "user_id": "lead",
            "user_role": "internal_user",
            "teams": [{"team_id": "t-own", "user_role": "admin"}],
        },
    )
    status, err = await api.post("/team/block", {"team_id": "t-own"}, key=lead["key"])
    assert status == 403, err
    info = await api.ok("GET", "/team/info", params={"team_id": "t-own"})
    assert info["team_info"]["blocked"] is False

"""A change made through the management API applies to the very next request on this
gateway, although it caches keys and their entities for an hour: a team's new budget, a
team block and its lifting (other instances follow within ``key_cache_ttl_seconds``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from spendgate.config import GatewayConfig, parse_config
from spendgate.server import build_app

MASTER = "sk-master-entities"
ADMIN = {"authorization": f"Bearer {MASTER}"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
REPLY = {
    "id": "x",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 4},
}


def _upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=REPLY)


def _config(tmp_path: Path) -> GatewayConfig:
    """One model on a mock upstream; keys and their entities cached for an hour."""
    general: dict[str, Any] = {
        "master_key": MASTER,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "journal_dir": str(tmp_path / "journal"),
        "key_cache_ttl_seconds": 3600,
    }
    return parse_config(
        {
            "model_list": [
                {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up/v1"}}
            ],
            "general_settings": general,
            "router_settings": {"num_retries": 0},
        },
        environ={},
    )


def test_team_changes_apply_to_the_next_request(tmp_path: Path) -> None:
    config = _config(tmp_path)
    app = build_app(config, transport=httpx.MockTransport(_upstream))
    with TestClient(app) as client:
        assert (
            client.post("/team/new", json={"team_id": "t1", "max_budget": 10}, headers=ADMIN).status_code
            == 200
        )
        raw = client.post("/key/generate", json={"team_id": "t1"}, headers=ADMIN).json()["key"]
        as_key = {"authorization": f"Bearer {raw}"}

        def chat() -> Any:  # the test client's response
            return client.post("/v1/chat/completions", json=CHAT, headers=as_key)

        assert chat().status_code == 200  # the key and its team are cached now, for an hour

        assert (
            client.post("/team/update", json={"team_id": "t1", "max_budget": 0}, headers=ADMIN).status_code
            == 200
        )
        refused = chat()
        assert refused.status_code == config.general_settings.budget_exceeded_status
        assert refused.json()["error"]["type"] == "budget_exceeded"
        assert "team:t1" in refused.json()["error"]["message"]

        assert (
            client.post("/team/update", json={"team_id": "t1", "max_budget": 10}, headers=ADMIN).status_code
            == 200
        )
        assert chat().status_code == 200

        assert (
            client.post("/team/update", json={"team_id": "t1", "blocked": True}, headers=ADMIN).status_code
            == 200
        )
        blocked = chat()
        assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "team_blocked"
        assert (
            client.post("/team/update", json={"team_id": "t1", "blocked": False}, headers=ADMIN).status_code
            == 200
        )
        assert chat().status_code == 200


def test_a_blocked_user_or_organization_refuses_its_keys(tmp_path: Path) -> None:
    """``blocked`` on a user or an organization (accepted by ``/user/update`` and
    ``/organization/update``) refuses their keys at the next request, until it is lifted; an
    organization reached through the key's team counts too."""
    config = _config(tmp_path)
    app = build_app(config, transport=httpx.MockTransport(_upstream))
    with TestClient(app) as client:

        def admin(path: str, body: dict[str, Any]) -> Any:
            answer = client.post(path, json=body, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            return answer.json()

        org_id = admin("/organization/new", {"organization_alias": "acme"})["organization_id"]
        admin("/team/new", {"team_id": "t1", "organization_id": org_id})
        admin("/user/new", {"user_id": "u1"})
        user_key = admin("/key/generate", {"user_id": "u1"})["key"]
        team_key = admin("/key/generate", {"team_id": "t1"})["key"]

        def chat(key: str) -> Any:
            return client.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})

        assert chat(user_key).status_code == 200 and chat(team_key).status_code == 200  # cached now

        admin("/user/update", {"user_id": "u1", "blocked": True})
        refused = chat(user_key)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "user_blocked"
        assert chat(team_key).status_code == 200
        admin("/user/update", {"user_id": "u1", "blocked": False})
        assert chat(user_key).status_code == 200

        admin("/organization/update", {"organization_id": org_id, "blocked": True})
        refused = chat(team_key)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "organization_blocked"
        assert chat(user_key).status_code == 200
        admin("/organization/update", {"organization_id": org_id, "blocked": False})
        assert chat(team_key).status_code == 200

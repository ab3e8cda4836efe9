"""A change made through the management API applies to the very next request on this
gateway, although it caches keys and their entities for an hour: a team's new budget, a
team block and its lifting (other instances follow within ``key_cache_ttl_seconds``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from spendgate.config import parse_config
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


def test_team_changes_apply_to_the_next_request(tmp_path: Path) -> None:
    general: dict[str, Any] = {
        "master_key": MASTER,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "journal_dir": str(tmp_path / "journal"),
        "key_cache_ttl_seconds": 3600,
    }
    config = parse_config(
        {
            "model_list": [
                {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up/v1"}}
            ],
            "general_settings": general,
            "router_settings": {"num_retries": 0},
        },
        environ={},
    )
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

"""The admin routes mounted in the real gateway app (the one-line integration of the docs):
a key made through /key/generate authenticates on the inference routes at once, and a
blocked key is refused at once although the gateway caches key look-ups."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from spendgate.admin import AdminSettings, admin_routes
from spendgate.config import parse_config
from spendgate.server import build_app

MASTER = "sk-master-mounted"


def test_admin_routes_in_the_gateway(tmp_path: Path) -> None:
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": "gpt-4o",
                    "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9"},
                }
            ],
            "general_settings": {
                "master_key": MASTER,
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                "journal_dir": str(tmp_path / "journal"),
                "key_cache_ttl_seconds": 3600,
            },
        }
    )
    app = build_app(config)
    app.starlette.router.routes.extend(
        admin_routes(
            AdminSettings.from_master_key(
                lambda request: request.app.state.services.engine,
                config.general_settings.master_key,
                on_key_change=lambda request, h: request.app.state.services.pipeline.auth.forget(h),
            )
        )
    )
    admin = {"authorization": f"Bearer {MASTER}"}
    with TestClient(app) as client:
        raw = client.post("/key/generate", json={"key_alias": "k"}, headers=admin).json()["key"]
        as_key = {"authorization": f"Bearer {raw}"}
        assert client.get("/v1/models", headers=as_key).status_code == 200  # cached now, for an hour
        assert client.post("/key/block", json={"key": raw}, headers=admin).status_code == 200
        assert client.get("/v1/models", headers=as_key).status_code == 403
        assert client.post("/key/unblock", json={"key": raw}, headers=admin).status_code == 200
        assert client.get("/v1/models", headers=as_key).status_code == 200
        assert "/key/generate" in client.get("/openapi.json").json()["paths"]


def test_global_spend_shows_the_configured_proxy_budget(tmp_path: Path) -> None:
    """LiteLLM's /global/spend answers the proxy-wide max_budget beside the spend."""
    config = parse_config(
        {
            "model_list": [],
            "litellm_settings": {"max_budget": "12.5"},
            "general_settings": {
                "master_key": MASTER,
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                "journal_dir": str(tmp_path / "journal"),
            },
        }
    )
    with TestClient(build_app(config)) as client:
        answer = client.get("/global/spend", headers={"authorization": f"Bearer {MASTER}"})
    assert answer.status_code == 200
    assert answer.json() == {"spend": 0, "max_budget": 12.5, "saved_cache_cost": 0}

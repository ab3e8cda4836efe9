"""The YAML config: LiteLLM keys accepted (with a warning) or used, unknown keys refused,
errors that name the field, environment variables and overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import spendgate
from spendgate.config import load_config, parse_config
from spendgate.errors import ConfigurationError
from spendgate.gateway.deployments import build_deployments

EXAMPLE = Path(__file__).parents[2] / "examples" / "config.yaml"


def _deployment(**params: Any) -> dict[str, Any]:
    return {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", **params}}


def test_example_config_loads_and_routes_to_the_mock() -> None:
    config = load_config(EXAMPLE, environ={})
    deployments = build_deployments(config, spendgate.default_price_book())
    assert {d.group for d in deployments} >= {"gpt-4o", "claude-sonnet-4-6", "text-embedding-3-small"}
    assert all("127.0.0.1:8090" in d.target.api_base for d in deployments)
    assert config.warnings == ()  # the example starts without warnings about its own keys
    # `serve --mock-provider PORT` sets SPENDGATE_MOCK_URL: every model follows the mock's port.
    moved = load_config(EXAMPLE, environ={"SPENDGATE_MOCK_URL": "http://127.0.0.1:8190"})
    assert {d.litellm_params.api_base for d in moved.model_list} == {"http://127.0.0.1:8190"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"general_settings": {"no_such_key": 1}}, "general_settings.no_such_key: unknown setting"),
        ({"litellm_settings": {"bogus": 1}}, "litellm_settings.bogus: unknown setting"),
        ({"frobnicate": {}}, "frobnicate: unknown section"),
        (
            {"model_list": [_deployment(), _deployment(api_base="ftp://x")]},
            "model_list[1].litellm_params.api_base",
        ),
        ({"model_list": [_deployment(rpm="many")]}, "model_list[0].litellm_params.rpm"),
        ({"model_list": [{"model_name": "m"}]}, "model_list[0].litellm_params: Field required"),
        ({"model_list": [_deployment(api_key="os.environ/NOT_SET_X")]}, "environment variable NOT_SET_X"),
        ({"model_list": [_deployment()], "router_settings": {"fallbacks": [{"m": ["nope"]}]}}, "'nope'"),
        ({"model_list": [_deployment(budget_duration="3x")]}, "model_list[0].litellm_params.budget_duration"),
        ({"model_list": [_deployment(max_budget=-1)]}, "model_list[0].litellm_params.max_budget"),
        (
            {"router_settings": {"provider_budget_config": {"groq": {"max_budget": 1, "time_period": "9"}}}},
            "router_settings.provider_budget_config.groq.time_period",
        ),
        (
            {"router_settings": {"provider_budget_config": {"openai": {"time_period": "1d"}}}},
            "router_settings.provider_budget_config.openai.max_budget: Field required",
        ),
    ],
)
def test_errors_name_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw, environ={})


def test_litellm_keys_are_accepted_with_warnings() -> None:
    config = parse_config(
        {
            "model_list": [_deployment(temperature=0.2)],
            "litellm_settings": {"drop_params": True, "success_callback": ["langfuse"], "num_retries": 5},
            "general_settings": {"store_model_in_db": True, "track_unmanaged_batch_cost": True},
            "router_settings": {"routing_strategy": "latency-based-routing"},
            "guardrails": [],
        },
        environ={},
    )
    assert config.num_retries == 5 and config.router_settings.strategy == "simple-shuffle"
    assert len(config.warnings) == 7
    assert any("track_unmanaged_batch_cost" in warning for warning in config.warnings)


def test_environment_values_and_overrides() -> None:
    config = parse_config(
        {
            "model_list": [_deployment(api_key="os.environ/MY_KEY")],
            "environment_variables": {"MY_KEY": "from-config"},
            "general_settings": {"database_url": "sqlite:///a.db"},
        },
        environ={
            "SPENDGATE_DATABASE_URL": "sqlite:///b.db",
            "SPENDGATE_MAX_REQUEST_SIZE_MB": "2",
            "PROXY_BATCH_POLLING_INTERVAL": "3600",  # LiteLLM's variable
        },
    )
    assert config.model_list[0].litellm_params.api_key == "from-config"
    assert config.general_settings.database_url == "sqlite:///b.db"
    assert config.max_request_bytes == 2 * 1024 * 1024
    assert config.general_settings.batch_poll_interval_seconds == 3600


def test_unsupported_provider_is_named() -> None:
    config = parse_config(
        {"model_list": [{"model_name": "m", "litellm_params": {"model": "bedrock/x"}}]}, environ={}
    )
    with pytest.raises(ConfigurationError, match=r"model_list\[0\].litellm_params.model: provider 'bedrock'"):
        build_deployments(config, spendgate.default_price_book())


def test_serve_refuses_a_bad_config_naming_the_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spendgate.cli import _register, app

    _register()
    bad = tmp_path / "config.yaml"
    bad.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o, rpm: lots}\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(bad)])
    assert result.exit_code == 2
    assert "model_list[0].litellm_params.rpm" in result.output

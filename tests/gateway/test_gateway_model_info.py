"""LiteLLM's /model/info, /v1/model/info and /model_group/info over real HTTP: LiteLLM's
field names (listed here) with the right types, the catalogue's exact rates (a
deployment's own prices winning), no credential anywhere, and a restricted key seeing
only its models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, make_config

from spendgate.costs import default_price_book
from spendgate.providers.mock import MockServer

# LiteLLM's names (proxy /model/info: Deployment + ModelInfoBase; /model_group/info:
# ModelGroupInfo) → the JSON types a client reads.
NUMBER = (int, float)
OPTIONAL_INT = (int, type(None))
DEPLOYMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "model_name": (str,),
    "litellm_params": (dict,),
    "model_info": (dict,),
}
MODEL_INFO_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "db_model": (bool,),
    "key": (str,),
    "mode": (str,),
    "litellm_provider": (str,),
    "max_tokens": (int,),
    "max_input_tokens": (int,),
    "max_output_tokens": (int,),
    "input_cost_per_token": NUMBER,
    "output_cost_per_token": NUMBER,
    "cache_read_input_token_cost": NUMBER,
    "cache_creation_input_token_cost": NUMBER,
    "input_cost_per_token_batches": NUMBER,
    "output_cost_per_token_batches": NUMBER,
    "tpm": OPTIONAL_INT,
    "rpm": OPTIONAL_INT,
}
MODEL_GROUP_FIELDS: dict[str, tuple[type, ...]] = {
    "model_group": (str,),
    "providers": (list,),
    "max_input_tokens": NUMBER,
    "max_output_tokens": NUMBER,
    "input_cost_per_token": NUMBER,
    "output_cost_per_token": NUMBER,
    "mode": (str,),
    "tpm": OPTIONAL_INT,
    "rpm": OPTIONAL_INT,
    "supports_parallel_function_calling": (bool,),
    "supports_vision": (bool,),
    "supports_function_calling": (bool,),
    "supports_web_search": (bool,),
    "supports_reasoning": (bool,),
    "supports_url_context": (bool,),
}

UPSTREAM_KEY = "sk-FAKE-upstream-key-do-not-show-4711"
SECRETS = (
    UPSTREAM_KEY,
    "AKIA-FAKE-aws-secret-0815",
    "hdr-FAKE-bearer-secret-42",
    "pw-FAKE-basic-auth-9001",
    "q-FAKE-query-token-1234",
)


def _config(mock_base_url: str, tmp: Path) -> Any:
    dead = "http://127.0.0.1:9"
    return make_config(
        mock_base_url,
        tmp / "spendgate.db",
        tmp / "journal",
        model_list=[
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": mock_base_url,
                    "api_key": UPSTREAM_KEY,
                    "aws_secret_access_key": SECRETS[1],
                    "extra_headers": {"Authorization": f"Bearer {SECRETS[2]}"},
                    "rpm": 600,
                },
                "model_info": {"id": "gpt-4o-main", "supports_vision": True},
            },
            {
                "model_name": "claude-sonnet-4-6",
                "litellm_params": {
                    "model": "anthropic/claude-sonnet-4-6",
                    "api_base": f"http://admin:{SECRETS[3]}@127.0.0.1:9/v1?key={SECRETS[4]}",
                    "api_key": UPSTREAM_KEY,
                },
            },
            {  # one model group, two deployments: one at its own input price
                "model_name": "duo",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": dead,
                    "input_cost_per_token": "0.000004",
                },
                "model_info": {"id": "duo-dear"},
            },
            {
                "model_name": "duo",
                "litellm_params": {"model": "openai/gpt-4o", "api_base": dead},
                "model_info": {"id": "duo-list"},
            },
            {
                "model_name": "my-llama",
                "litellm_params": {
                    "model": "hosted_vllm/my-llama",
                    "api_base": mock_base_url,
                    "input_cost_per_token": "0.000001",
                    "output_cost_per_token": "0.000002",
                },
            },
        ],
        router_settings={"routing_strategy": "simple-shuffle", "fallbacks": []},
    )


@pytest.fixture(scope="module")
def gateway(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = GatewayServer(_config(mock_server.base_url, tmp_path_factory.mktemp("model_info"))).start()
    try:
        yield server
    finally:
        server.stop()


def _get(gateway: GatewayServer, path: str, key: str | None = MASTER_KEY, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{gateway.base_url}{path}", headers=headers, params=params, timeout=20)


def _exact(response: httpx.Response) -> Any:
    """The body with every JSON number read as an exact Decimal."""
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


@pytest.fixture(scope="module")
def limited_key(gateway: GatewayServer) -> str:
    with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {MASTER_KEY}"}) as admin:
        reply = admin.post("/key/generate", json={"models": ["gpt-4o"]})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["key"])


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["model_info"]["id"]: d for d in body["data"]}


@pytest.mark.parametrize("path", ["/model/info", "/v1/model/info"])
def test_model_info_has_litellms_fields_with_their_types(gateway: GatewayServer, path: str) -> None:
    reply = _get(gateway, path)
    assert reply.status_code == 200, reply.text
    deployments = _by_id(reply.json())
    assert set(deployments) == {"gpt-4o-main", "claude-sonnet-4-6#1", "duo-dear", "duo-list", "my-llama#1"}
    for name in ("gpt-4o-main", "claude-sonnet-4-6#1"):
        item = deployments[name]
        for field, types in DEPLOYMENT_FIELDS.items():
            assert isinstance(item[field], types), (name, field)
        info = item["model_info"]
        for field, types in MODEL_INFO_FIELDS.items():
            if field == "cache_creation_input_token_cost" and name == "gpt-4o-main":
                assert info[field] is None  # gpt-4o has no cache-write price: null, not 0
                continue
            assert field in info, (name, field)
            assert isinstance(info[field], types), (name, field, info[field])
    gpt = deployments["gpt-4o-main"]
    assert gpt["model_name"] == "gpt-4o"
    assert gpt["litellm_params"]["model"] == "openai/gpt-4o"
    assert gpt["model_info"]["db_model"] is False
    assert gpt["model_info"]["litellm_provider"] == "openai"
    assert gpt["model_info"]["mode"] == "chat"
    assert gpt["model_info"]["rpm"] == 600
    assert gpt["model_info"]["supports_vision"] is True  # from the deployment's model_info
    assert deployments["my-llama#1"]["model_info"]["litellm_provider"] == "hosted_vllm"


def test_prices_are_the_catalogues_exact_rates_and_a_deployments_own_prices_win(
    gateway: GatewayServer,
) -> None:
    body = _exact(_get(gateway, "/model/info"))
    deployments = {d["model_info"]["id"]: d["model_info"] for d in body["data"]}
    book = default_price_book()
    gpt = book.resolve("gpt-4o", "openai")
    claude = book.resolve("claude-sonnet-4-6", "anthropic")
    assert gpt is not None and claude is not None
    info = deployments["gpt-4o-main"]
    assert info["input_cost_per_token"] == gpt.spec.rates.input == Decimal("0.0000025")
    assert info["output_cost_per_token"] == gpt.spec.rates.output
    assert info["cache_read_input_token_cost"] == gpt.spec.rates.cache_read
    assert info["input_cost_per_token_batches"] == gpt.spec.rates.input / 2  # gpt-4o: half price in batch
    assert info["max_output_tokens"] == gpt.entry.max_output_tokens
    assert info["max_input_tokens"] == gpt.entry.max_input_tokens
    assert info["key"] == gpt.entry.id
    assert info["spendgate"]["catalogue_version"] == gpt.catalogue_version
    assert Decimal(info["spendgate"]["prices"]["rates"]["input"]) == gpt.spec.rates.input
    sonnet = deployments["claude-sonnet-4-6#1"]
    assert sonnet["input_cost_per_token"] == claude.spec.rates.input
    assert sonnet["cache_creation_input_token_cost"] == claude.spec.rates.cache_write
    assert sonnet["cache_read_input_token_cost"] == claude.spec.rates.cache_read
    # per-deployment prices win over the catalogue, rate by rate
    assert deployments["duo-dear"]["input_cost_per_token"] == Decimal("0.000004")
    assert deployments["duo-dear"]["output_cost_per_token"] == gpt.spec.rates.output
    assert deployments["duo-dear"]["spendgate"]["price_source"] == "bundled+deployment:duo-dear"
    assert deployments["duo-list"]["input_cost_per_token"] == gpt.spec.rates.input
    assert deployments["my-llama#1"]["input_cost_per_token"] == Decimal("0.000001")
    assert deployments["my-llama#1"]["output_cost_per_token"] == Decimal("0.000002")


def test_model_group_info_has_litellms_fields_and_sums_the_group(gateway: GatewayServer) -> None:
    reply = _get(gateway, "/model_group/info")
    assert reply.status_code == 200, reply.text
    groups = {g["model_group"]: g for g in reply.json()["data"]}
    assert set(groups) == {"gpt-4o", "claude-sonnet-4-6", "duo", "my-llama"}
    for name in ("gpt-4o", "claude-sonnet-4-6", "duo"):
        for field, types in MODEL_GROUP_FIELDS.items():
            assert field in groups[name], (name, field)
            assert isinstance(groups[name][field], types), (name, field, groups[name][field])
    assert groups["gpt-4o"]["providers"] == ["openai"]
    assert groups["gpt-4o"]["supports_vision"] is True
    assert groups["gpt-4o"]["rpm"] == 600
    duo = _exact(_get(gateway, "/model_group/info", model_group="duo"))["data"]
    assert len(duo) == 1
    assert duo[0]["input_cost_per_token"] == Decimal("0.000004")  # the dearest deployment's
    assert duo[0]["spendgate"]["deployments"] == ["duo-dear", "duo-list"]
    assert duo[0]["rpm"] is None  # a deployment without an rpm: unlimited


def test_no_credential_appears_in_any_answer(
    gateway: GatewayServer, limited_key: str, mock_server: MockServer
) -> None:
    for key in (MASTER_KEY, limited_key):
        for path in ("/model/info", "/v1/model/info", "/model_group/info"):
            reply = _get(gateway, path, key)
            assert reply.status_code == 200
            for secret in SECRETS:
                assert secret not in reply.text, (path, secret)
            assert "api_key" not in reply.text
            assert "aws_secret_access_key" not in reply.text
            assert "extra_headers" not in reply.text
    params = _by_id(_get(gateway, "/model/info").json())
    # the master key sees where a deployment points, without user info or query string
    assert params["claude-sonnet-4-6#1"]["litellm_params"]["api_base"] == "http://127.0.0.1:9/v1"
    assert params["gpt-4o-main"]["litellm_params"]["api_base"] == mock_server.base_url.rstrip("/")
    # a virtual key does not see api_base at all
    limited = _by_id(_get(gateway, "/model/info", limited_key).json())
    assert "api_base" not in limited["gpt-4o-main"]["litellm_params"]


def test_a_restricted_key_sees_only_its_models_and_an_unknown_key_nothing(
    gateway: GatewayServer, limited_key: str
) -> None:
    models = {m["id"] for m in _get(gateway, "/v1/models", limited_key).json()["data"]}
    assert models == {"gpt-4o"}
    info = _get(gateway, "/model/info", limited_key).json()["data"]
    assert {d["model_name"] for d in info} == models
    groups = _get(gateway, "/model_group/info", limited_key).json()["data"]
    assert {g["model_group"] for g in groups} == models
    assert _get(gateway, "/model/info", limited_key, litellm_model_id="gpt-4o-main").status_code == 200
    for path, params, status in (
        ("/model/info", {"litellm_model_id": "duo-dear"}, 403),
        ("/model_group/info", {"model_group": "duo"}, 403),
        ("/model/info", {"litellm_model_id": "nope"}, 404),
        ("/model_group/info", {"model_group": "nope"}, 404),
    ):
        reply = _get(gateway, path, limited_key, **params)
        assert reply.status_code == status, (path, params, reply.text)
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["param"] == next(iter(params))
    for path in ("/model/info", "/v1/model/info", "/model_group/info"):
        assert _get(gateway, path, "sk-not-a-key").status_code == 401
        assert _get(gateway, path, None).status_code == 401


def test_one_deployment_by_its_id(gateway: GatewayServer) -> None:
    reply = _get(gateway, "/v1/model/info", litellm_model_id="duo-list")
    assert reply.status_code == 200
    assert [d["model_info"]["id"] for d in reply.json()["data"]] == ["duo-list"]

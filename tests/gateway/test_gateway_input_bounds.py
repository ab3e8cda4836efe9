"""What a request body may carry is bounded where it is parsed (``spendgate.gateway.bounds``):
a value out of bounds is a 422 naming the field, never a 500 and never an event the ledger
refuses later. Run on SQLite and PostgreSQL (PostgreSQL text cannot hold NUL and its id
columns are 255 characters wide), and on Redis counters for the integer bounds."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from gateway_helpers import MASTER_KEY, GatewayServer, make_config
from ledger_rows import event_rows
from limits_helpers import Admin, error_of

from spendgate.gateway.bounds import MAX_TAG_CHARS, MAX_TAGS
from spendgate.http.credentials import MAX_ID_CHARS
from spendgate.providers.body_rules import MAX_CHOICES, MAX_OUTPUT_TOKENS
from spendgate.providers.mock import MockServer

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH = {"authorization": f"Bearer {MASTER_KEY}", "x-mock-completion-tokens": "2"}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def _check_422(response: httpx.Response, param: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param, error


# -- integer bounds ------------------------------------------------------------------------


@pytest.fixture
def http(gateway: GatewayServer, mock: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers=AUTH, timeout=30) as c:
        yield c


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, MAX_OUTPUT_TOKENS + 1, -1, 1.5, "10"])
@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/v1/chat/completions", "max_tokens", CHAT),
        ("/v1/chat/completions", "max_completion_tokens", CHAT),
        ("/v1/responses", "max_output_tokens", {"model": "gpt-4o", "input": "hi"}),
        ("/v1/completions", "max_tokens", {"model": "gpt-4o", "prompt": "hi"}),
    ],
)
def test_output_caps_are_bounded(
    http: httpx.Client, path: str, field: str, body: dict[str, Any], value: Any
) -> None:
    _check_422(http.post(path, json={**body, field: value}), field)


@pytest.mark.parametrize(("field", "value"), [("n", 0), ("n", MAX_CHOICES + 1), ("best_of", MAX_CHOICES + 1)])
def test_choice_counts_are_bounded(http: httpx.Client, field: str, value: int) -> None:
    _check_422(http.post("/v1/completions", json={"model": "gpt-4o", "prompt": "hi", field: value}), field)


def test_the_largest_bounds_are_accepted(http: httpx.Client) -> None:
    body = {**CHAT, "max_tokens": MAX_OUTPUT_TOKENS, "n": 2}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


def test_an_integer_past_64_bits_is_a_422(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        content=b'{"model": "gpt-4o", "messages": [], "max_tokens": 1' + b"0" * 30 + b"}",
        headers={"content-type": "application/json"},
    )
    _check_422(response, "max_tokens")


@pytest.mark.redis
def test_the_largest_worst_case_fits_the_redis_counters(mock_server: MockServer, tmp_path: Path) -> None:
    """Past the bound a 422; at it (max_tokens 2^31-1 × n 128 at $1,000 per million output
    tokens) the worst case still fits the counters: a 402, not a 500."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc!r}")
    models = [
        {
            "model_name": "pricey",
            "litellm_params": {
                "model": "openai/pricey",
                "api_base": mock_server.base_url,
                "input_cost_per_token": "0.001",
                "output_cost_per_token": "0.001",
            },
        }
    ]
    config = make_config(
        mock_server.base_url,
        tmp_path / "redis.db",
        tmp_path / "journal",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"redis_url": REDIS_URL, "enforcement_key_prefix": f"sg-bounds-{uuid.uuid4().hex}"},
    )
    with GatewayServer(config) as gw, Admin(gw.base_url) as admin:
        key = admin.key(max_budget=100, budget_duration="1d")
        body = {"model": "pricey", "prompt": "hi", "max_tokens": MAX_OUTPUT_TOKENS, "n": MAX_CHOICES}
        headers = {"authorization": f"Bearer {key}"}
        past = httpx.post(
            f"{gw.url}/completions", json={**body, "max_tokens": 2**63}, headers=headers, timeout=30
        )
        _check_422(past, "max_tokens")  # was a 500: the worst case overflowed the counters
        response = httpx.post(f"{gw.url}/completions", json=body, headers=headers, timeout=30)
        assert response.status_code == 402, response.text
        small = {**body, "max_tokens": 2, "n": 1}
        assert httpx.post(f"{gw.url}/completions", json=small, headers=headers, timeout=30).status_code == 200


# -- strings that reach the database, on SQLite and PostgreSQL -------------------------------


@pytest.fixture(scope="module")
def db_gateway(
    mock_server: MockServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayServer, Path]]:
    tmp = tmp_path_factory.mktemp("bounds")
    config = make_config(
        mock_server.base_url,
        tmp / "unused.db",
        tmp / "journal",
        general_settings={"database_url": database_url},
    )
    with GatewayServer(config) as server:
        yield server, tmp / "journal"


@pytest.fixture
def sdk(db_gateway: tuple[GatewayServer, Path], mock: MockServer) -> Iterator[openai.OpenAI]:
    gw, _ = db_gateway
    with openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        yield c


NUL_CASES = [
    ({"user": "cust\x00omer"}, "user"),
    ({"metadata": {"tags": ["ok", "b\x00d"]}}, "metadata.tags[1]"),
    ({"metadata": {"note": "a\x00"}}, "metadata.note"),
    ({"metadata": {"user_id": "\x00"}}, "metadata.user_id"),
    ({"metadata": {"k\x00": "v"}}, "metadata"),
    ({"model": "gpt-4o\x00"}, "model"),
]


@pytest.mark.parametrize(("extra", "param"), NUL_CASES)
def test_a_nul_in_a_recorded_field_is_a_422(sdk: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    extra = dict(extra)
    model = extra.pop("model", "gpt-4o")
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        sdk.chat.completions.create(model=model, messages=CHAT["messages"], extra_body=extra)
    assert error_of(bad.value)["param"] == param


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "metadata.tags"),
        ({"tags": ["x" * (MAX_TAG_CHARS + 1)]}, "metadata.tags[0]"),
        ({"tags": "one-tag"}, "metadata.tags"),
        ({"user_id": "u" * (MAX_ID_CHARS + 1)}, "metadata.user_id"),
    ],
)
def test_tags_and_ids_are_capped(sdk: openai.OpenAI, metadata: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        sdk.chat.completions.create(
            model="gpt-4o", messages=CHAT["messages"], extra_body={"metadata": metadata}
        )
    assert error_of(bad.value)["param"] == param


def test_a_long_user_is_a_422(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        sdk.chat.completions.create(model="gpt-4o", messages=CHAT["messages"], user="u" * (MAX_ID_CHARS + 1))
    assert error_of(bad.value)["param"] == "user"


def test_the_largest_allowed_strings_are_recorded(
    sdk: openai.OpenAI, database_url: str, db_gateway: tuple[GatewayServer, Path]
) -> None:
    """At the caps (32 tags of 128 characters, a 255-character customer) the event is
    written, and nothing is dead-lettered."""
    tags = [f"{i:02d}" + "t" * (MAX_TAG_CHARS - 2) for i in range(MAX_TAGS)]
    user = "c" * MAX_ID_CHARS
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=CHAT["messages"],
        max_tokens=2,
        user=user,
        extra_body={"metadata": {"tags": tags, "note": "fine"}},
    )
    (row,) = event_rows(database_url, raw.headers["x-spendgate-request-id"])
    assert row["end_user"] == user
    recorded = row["request_tags"]
    assert sorted(recorded if isinstance(recorded, list) else json.loads(recorded)) == tags
    _, journal = db_gateway
    assert not (journal / "dead-letter.jsonl").exists()

"""Pre-tokenized prompts (lists of token ids) are counted as tokens when the gateway reserves
a call's worst case, so a strict budget holds against them as against text.

The model ``ids`` costs $0.000001 per input and per output token: a completion of a
2,000-token prompt with ``max_tokens=1`` costs exactly 2,001,000 nano-USD, both as reserved
(prompt estimate + cap) and as billed (the mock counts one token an id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_helpers import GatewayServer, Ledger, make_config
from limits_helpers import Admin, error_of

from spendgate.core.keys import hash_key
from spendgate.enforcement.estimate import declared_choices
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.providers.mock import MockServer
from spendgate.providers.mock.tokens import chat_prompt_tokens, input_tokens

PROMPT_TOKENS = 2_000
CALL_NANOS = (PROMPT_TOKENS + 1) * 1_000
"""One call: 2,000 prompt tokens and 1 completion token at 1,000 nano-USD each."""
BUDGET_USD = 0.20
BUDGET_NANOS = 200_000_000


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("token-ids")

    def model(name: str, mode: str, output_cost: str) -> dict[str, Any]:
        params = {
            "model": "openai/ids-model",
            "api_base": mock_server.base_url,
            "input_cost_per_token": "0.000001",
            "output_cost_per_token": output_cost,
        }
        return {"model_name": name, "litellm_params": params, "model_info": {"mode": mode}}

    models = [model("ids", "completion", "0.000001"), model("ids-embed", "embedding", "0")]
    config = make_config(
        mock_server.base_url,
        tmp / "ids.db",
        tmp / "journal",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"key_cache_ttl_seconds": 60},
    )
    with GatewayServer(config) as server:
        yield server


def _key(gw: GatewayServer, **fields: Any) -> str:
    with Admin(gw.base_url) as admin:
        return admin.key(**fields)


def _client(gw: GatewayServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=120)


def _ids(count: int, start: int = 0) -> list[int]:
    return [(start + i) % 50_000 for i in range(count)]


async def _completion(client: openai.AsyncOpenAI, prompt: Any) -> int:
    try:
        await client.completions.create(model="ids", prompt=prompt, max_tokens=1)
    except openai.APIStatusError as exc:
        assert exc.status_code == 402, (exc.status_code, exc.body)
        return exc.status_code
    return 200


@pytest.mark.asyncio
async def test_400_concurrent_token_id_prompts_never_pass_a_key_budget(
    gw: GatewayServer, mock: MockServer
) -> None:
    raw = _key(gw, key_alias="token-id-race", max_budget=BUDGET_USD, budget_duration="1d")
    # Half a flat list of 2,000 ids, half a list of two lists of 1,000 (they sum).
    prompts = [_ids(PROMPT_TOKENS, i) if i % 2 else [_ids(1_000, i), _ids(1_000, i + 7)] for i in range(400)]
    async with _client(gw, raw) as client:
        statuses = await asyncio.gather(*(_completion(client, p) for p in prompts))
    fits = BUDGET_NANOS // CALL_NANOS  # 99: the worst case reserved is the real cost
    assert statuses.count(200) == fits
    assert statuses.count(402) == 400 - fits
    db = Path(str(gw.app.state.services.engine.url.database))
    rows = Ledger(db).wait(fits, "api_key = ? AND status = 'success'", (hash_key(raw),))
    assert len(rows) == fits
    assert all(int(r["input_tokens"]) == PROMPT_TOKENS for r in rows)
    spent = sum(int(r["cost_nanos"]) for r in rows)
    assert spent == fits * CALL_NANOS <= BUDGET_NANOS  # 0 overspend


@pytest.mark.asyncio
async def test_token_id_embeddings_are_reserved_as_tokens(gw: GatewayServer, mock: MockServer) -> None:
    # 2,000 ids cost $0.002; a $0.0015 budget cannot admit them (it did at a quarter of the size).
    async with _client(gw, _key(gw, max_budget=0.0015, budget_duration="1d")) as client:
        for value in (_ids(PROMPT_TOKENS), [_ids(1_000), _ids(1_000, 3)]):
            with pytest.raises(openai.APIStatusError) as refused:
                await client.embeddings.create(model="ids-embed", input=value)
            assert refused.value.status_code == 402
        small = await client.embeddings.create(model="ids-embed", input=_ids(1_000))
    assert small.usage.prompt_tokens == 1_000


@pytest.mark.parametrize(
    "value",
    [
        _ids(2_000),
        [_ids(700), _ids(1_300)],
        ["a"] * 300,  # one token each, not a quarter of the joined text
        ["four", "eight ch", "x"],
        "plain text of some length",
    ],
)
def test_prompt_estimate_is_never_below_the_mock_count(value: Any) -> None:
    for key in ("prompt", "input"):
        estimate = estimate_prompt_tokens({"model": "m", key: value})
        assert estimate >= input_tokens(value)
        if isinstance(value, list) and all(isinstance(v, int | list) for v in value):
            assert estimate == input_tokens(value)  # token ids: exact


def test_a_responses_input_string_is_one_message_with_its_framing() -> None:
    """A Responses ``input`` string is a user message (the mock, like the providers, counts
    its framing); an embeddings ``input`` string is bare text."""
    text = "word " * 40
    assert estimate_prompt_tokens({"input": text}, "responses") >= chat_prompt_tokens(text)
    assert estimate_prompt_tokens({"input": text}) < chat_prompt_tokens(text)  # without the framing
    assert estimate_prompt_tokens({"input": text}, "responses") == estimate_prompt_tokens({"input": text}) + 4
    assert estimate_prompt_tokens({"input": text}, "embeddings") == estimate_prompt_tokens({"input": text})


def test_prompt_estimate_survives_deep_nesting() -> None:
    deep: Any = "x"
    for _ in range(1_000):
        deep = [deep]
    assert estimate_prompt_tokens({"input": deep}) >= 0


@pytest.mark.asyncio
async def test_best_of_is_reserved_and_billed_for_every_completion_generated(
    gw: GatewayServer, mock: MockServer
) -> None:
    # Worst case: 4 prompt tokens + best_of × max_tokens, at 1,000 nano-USD a token.
    async with _client(gw, _key(gw, max_budget=0.0002, budget_duration="1d")) as client:
        with pytest.raises(openai.APIStatusError) as refused:  # 304,000 > 200,000
            await client.completions.create(model="ids", prompt=[1, 2, 3, 4], max_tokens=100, best_of=3)
        assert refused.value.status_code == 402
        raw = await client.completions.with_raw_response.create(  # 154,000: fits
            model="ids", prompt=[1, 2, 3, 4], max_tokens=50, best_of=3
        )
    reply = raw.parse()
    assert len(reply.choices) == 1
    assert reply.usage is not None and reply.usage.completion_tokens == 150
    assert raw.headers["x-spendgate-response-cost"] == "0.000154"


@pytest.mark.parametrize(
    ("payload", "choices"),
    [({}, 1), ({"n": 3}, 3), ({"best_of": 5}, 5), ({"n": 2, "best_of": 4}, 4), ({"n": True}, 1)],
)
def test_best_of_multiplies_the_output_like_n(payload: dict[str, Any], choices: int) -> None:
    assert declared_choices(payload) == choices


@pytest.mark.asyncio
async def test_malformed_token_id_prompts_are_422(gw: GatewayServer, mock: MockServer) -> None:
    async with _client(gw, _key(gw)) as client:
        for prompt in ([1, "a"], [[1, 2], 3], [-1, 2], [1.5], [[True]], [2**31]):
            with pytest.raises(openai.UnprocessableEntityError) as bad:
                await client.completions.create(model="ids", prompt=prompt, max_tokens=1)  # type: ignore[arg-type]
            assert error_of(bad.value)["param"] == "prompt"

"""POST /spend/calculate over real HTTP: the cost of an answer equals, to the nano-USD, the
``x-spendgate-response-cost`` of the same call made through the gateway with the official
SDKs; a prompt is priced from the gateway's estimate at the catalogue's rate; nothing is
sent upstream or recorded; bad bodies get clear 4xx errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger

from spendgate.core.money import to_nano
from spendgate.costs import default_price_book
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.providers.mock import MockServer

# LiteLLM's answer, then spendgate's exact fields → their JSON types.
ANSWER_FIELDS: dict[str, tuple[type, ...]] = {
    "cost": (Decimal,),
    "cost_nanos": (int,),
    "priced": (bool,),
    "unpriced_reason": (type(None),),
    "model": (str,),
    "deployment_id": (str,),
    "resolved_model": (str,),
    "provider": (str,),
    "catalogue_version": (str,),
    "price_source": (str,),
    "estimated": (bool,),
    "usage": (dict,),
    "breakdown": (dict,),
}


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.base_url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=20
    ) as c:
        yield c


def _answer(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, reply.text
    return json.loads(reply.text, parse_float=Decimal)


def _header_nanos(headers: Any) -> int:
    return to_nano(Decimal(headers["x-spendgate-response-cost"]))


@pytest.mark.parametrize("model", ["gpt-4o", "my-llama"])
def test_cost_of_an_openai_answer_equals_the_gateways_cost_header(
    client: openai.OpenAI, http: httpx.Client, model: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "price me exactly, please"}]
    )
    billed = _header_nanos(raw.headers)
    assert billed > 0
    response = raw.parse().model_dump(mode="json")
    answer = _answer(http.post("/spend/calculate", json={"model": model, "completion_response": response}))
    for field, types in ANSWER_FIELDS.items():
        assert isinstance(answer[field], types), (field, answer[field])
    assert answer["cost_nanos"] == billed
    assert answer["cost"] == Decimal(raw.headers["x-spendgate-response-cost"])
    assert answer["estimated"] is False
    assert sum(answer["breakdown"].values()) == billed
    assert answer["usage"]["input_tokens"] == response["usage"]["prompt_tokens"]
    assert answer["usage"]["output_tokens"] == response["usage"]["completion_tokens"]
    assert answer["deployment_id"] == f"{model}#1"
    if model == "gpt-4o":  # the response's own model names the group when the body does not
        alone = _answer(http.post("/spend/calculate", json={"completion_response": response}))
        assert alone["cost_nanos"] == billed


def test_cost_of_an_anthropic_message_equals_the_gateways_cost_header(
    anthropic_client: anthropic.Anthropic, http: httpx.Client
) -> None:
    raw = anthropic_client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    )
    billed = _header_nanos(raw.headers)
    message = raw.parse().model_dump(mode="json")
    answer = _answer(
        http.post("/spend/calculate", json={"model": "claude-sonnet-4-6", "completion_response": message})
    )
    assert answer["cost_nanos"] == billed > 0
    assert answer["provider"] == "anthropic"


def test_a_prompt_is_priced_from_the_gateways_estimate_at_the_catalogue_rate(http: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "How much will this prompt cost before I send it?"},
    ]
    tokens = estimate_prompt_tokens({"messages": messages}, "chat")
    for model, deployment in (("gpt-4o", "gpt-4o#1"), ("gpt-4o-mini", None)):
        resolved = default_price_book().resolve(model, "openai")
        assert resolved is not None and resolved.spec.rates.input is not None
        answer = _answer(http.post("/spend/calculate", json={"model": model, "messages": messages}))
        assert answer["usage"] == {"input_tokens": tokens}
        assert answer["cost_nanos"] == to_nano(tokens * resolved.spec.rates.input)
        assert answer["estimated"] is True
        assert answer["deployment_id"] == deployment  # a model group: its deployment; else the catalogue
        assert answer["resolved_model"] == resolved.entry.id


def test_a_model_without_a_price_is_unpriced_never_zero(http: httpx.Client) -> None:
    answer = _answer(
        http.post(
            "/spend/calculate",
            json={"model": "no-such-model-x", "messages": [{"role": "user", "content": "hi"}]},
        )
    )
    assert answer["priced"] is False
    assert answer["cost"] is None and answer["cost_nanos"] is None
    assert "no-such-model-x" in answer["unpriced_reason"]


def test_nothing_is_sent_upstream_and_nothing_is_recorded(
    client: openai.OpenAI, http: httpx.Client, mock: MockServer, ledger: Ledger
) -> None:
    calculated = []
    for body in (
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": "gpt-4o",
            "completion_response": {
                "object": "chat.completion",
                "usage": {"prompt_tokens": 9, "completion_tokens": 3},
            },
        },
    ):
        reply = http.post("/spend/calculate", json=body)
        assert reply.status_code == 200
        calculated.append(reply.headers["x-spendgate-request-id"])
    assert sum(mock.stats()["by_path"].values()) == 0
    # a real call afterwards: once its event is in the ledger, the recorder has flushed past them
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    request_id = raw.headers["x-spendgate-request-id"]
    assert ledger.wait(1, "event_id = ?", (request_id,))
    for event_id in calculated:
        assert ledger.rows("event_id LIKE ?", (f"{event_id}%",)) == []


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"not json", 400, None),
        (b"[1, 2]", 400, None),
        (b"{}", 400, None),
        (b'{"model": "gpt-4o"}', 400, "messages"),
        (b'{"model": 5, "messages": []}', 422, "model"),
        (b'{"model": "gpt-4o", "messages": "hi"}', 422, "messages"),
        (b'{"model": "gpt-4o", "messages": ["hi"]}', 422, "messages"),
        (b'{"completion_response": "text"}', 422, "completion_response"),
        (b'{"completion_response": {"id": "x"}}', 422, "completion_response"),
        (
            b'{"completion_response": {"object": "chat.completion", "usage": {"prompt_tokens": 2}}}',
            422,
            "model",
        ),
    ],
)
def test_bad_bodies_get_clear_errors(http: httpx.Client, body: bytes, status: int, param: str | None) -> None:
    reply = http.post("/spend/calculate", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param


def test_a_key_prices_only_the_model_groups_it_may_call(gateway: GatewayServer, http: httpx.Client) -> None:
    key = http.post("/key/generate", json={"models": ["gpt-4o"]}).json()["key"]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    url = f"{gateway.base_url}/spend/calculate"
    allowed = httpx.post(url, json={"model": "gpt-4o", **body}, headers={"authorization": f"Bearer {key}"})
    assert allowed.status_code == 200
    refused = httpx.post(
        url, json={"model": "claude-sonnet-4-6", **body}, headers={"authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "model"
    assert (
        httpx.post(
            url, json={"model": "gpt-4o", **body}, headers={"authorization": "Bearer sk-nope"}
        ).status_code
        == 401
    )

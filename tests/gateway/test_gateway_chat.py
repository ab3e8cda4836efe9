"""Chat completions end to end: the openai SDK → the gateway → the mock provider, and the ledger."""

from __future__ import annotations

from decimal import Decimal

import openai
from gateway_helpers import Ledger
from openai.types.chat import ChatCompletionMessageParam

import spendgate
from spendgate import Usage

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello to the gateway"}]


def _expected_cost(model: str, usage: Usage) -> int:
    return spendgate.price(model, usage).total_nanos


def test_chat_is_recorded_once_with_exact_cost(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=12)
    reply = raw.parse()
    request_id = raw.headers["x-spendgate-request-id"]
    assert reply.usage is not None and reply.usage.completion_tokens == 12

    rows = ledger.operation(request_id, 1)
    assert len(rows) == 1
    row = rows[0]
    usage = Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=12)
    assert (row["input_tokens"], row["output_tokens"]) == (usage.input_tokens, 12)
    assert row["cost_nanos"] == _expected_cost("gpt-4o", usage) > 0
    assert row["status"] == "success" and not row["estimated"] and not row["unpriced"]
    assert row["event_id"] == request_id and row["deployment_id"] == "gpt-4o#1"
    assert row["requested_model"] == "gpt-4o" and row["provider"] == "openai"
    assert row["endpoint"] == "/v1/chat/completions" and row["catalogue_version"]
    assert Decimal(raw.headers["x-spendgate-response-cost"]) == spendgate.from_nano(row["cost_nanos"])
    assert float(raw.headers["x-spendgate-overhead-ms"]) >= 0

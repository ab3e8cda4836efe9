"""Retries and fallbacks: every attempt shares the operation id, failed attempts cost
nothing, and the call is billed once, at the deployment that served it."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal

import openai
from gateway_helpers import Ledger
from openai.types.chat import ChatCompletionMessageParam

import spendgate
from spendgate import Usage
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.gateway.deployments import Deployment
from spendgate.gateway.routing import Router
from spendgate.providers.base import Target
from spendgate.providers.mock import MockServer

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "retry me"}]


def _attempts(ledger: Ledger, headers: Mapping[str, str], count: int) -> list[dict[str, object]]:
    request_id = headers["x-spendgate-request-id"]
    rows = ledger.operation(request_id, count)
    assert len(rows) == count
    assert {r["operation_id"] for r in rows} == {request_id}
    return sorted(rows, key=lambda r: str(r["event_id"]))


def test_retry_on_another_deployment_is_billed_where_served(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=MESSAGES, max_tokens=3)
    reply = raw.parse()
    assert reply.usage is not None
    served, failed = _attempts(ledger, raw.headers, 2)
    assert (failed["deployment_id"], failed["status"], failed["cost_nanos"]) == ("flaky-dead", "error", 0)
    assert failed["event_id"] == f"{served['event_id']}.1"
    assert (served["deployment_id"], served["status"]) == ("flaky-alive", "success")
    # Billed at the serving deployment's price (the bundled gpt-4o), not the dead one's.
    usage = Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=3)
    assert served["cost_nanos"] == spendgate.price("gpt-4o", usage).total_nanos
    assert Decimal(raw.headers["x-spendgate-response-cost"]) == spendgate.from_nano(
        int(str(served["cost_nanos"]))
    )


def test_retry_after_an_upstream_503(client: openai.OpenAI, mock: MockServer, ledger: Ledger) -> None:
    mock.queue_faults({"status": 503, "times": 1, "model": "gpt-4o"})
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=3)
    served, failed = _attempts(ledger, raw.headers, 2)
    assert failed["status"] == "error" and served["status"] == "success"
    assert served["deployment_id"] == failed["deployment_id"] == "gpt-4o#1"
    assert mock.stats()["by_status"] == {"503": 1, "200": 1}


def test_fallback_to_another_group(client: openai.OpenAI, ledger: Ledger) -> None:
    stream = client.chat.completions.create(
        model="broken", messages=MESSAGES, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    usage = list(stream)[-1].usage
    assert usage is not None
    rows = _attempts(ledger, stream.response.headers, 3)
    served = rows[0]
    assert [r["status"] for r in rows] == ["success", "error", "error"]
    assert [r["deployment_id"] for r in rows[1:]] == ["broken-dead", "broken-dead"]
    assert served["deployment_id"] == "gpt-4o#1" and served["requested_model"] == "broken"
    assert (
        served["cost_nanos"]
        == spendgate.price("gpt-4o", Usage(input_tokens=usage.prompt_tokens, output_tokens=4)).total_nanos
    )
    assert sum(int(str(r["cost_nanos"])) for r in rows) == served["cost_nanos"]  # billed once


def _deployment(name: str, in_flight: int = 0, weight: float = 1.0) -> Deployment:
    target = Target("openai", "openai", "gpt-4o", "http://127.0.0.1:1")
    book = spendgate.default_price_book()
    return Deployment(name, "g", target, "gpt-4o", "openai", book, weight=weight, in_flight=in_flight)


def test_least_busy_picks_the_fewest_in_flight() -> None:
    busy, idle = _deployment("busy", in_flight=3), _deployment("idle", in_flight=1)
    router = Router([busy, idle], strategy="least-busy")
    assert {router.pick([busy, idle]).id for _ in range(20)} == {"idle"}


def test_simple_shuffle_follows_weights() -> None:
    heavy, light = _deployment("heavy", weight=9), _deployment("light", weight=1)
    router = Router([heavy, light], rng=random.Random(7))
    picks = [router.pick([heavy, light]).id for _ in range(1000)]
    assert 850 < picks.count("heavy") < 950


def test_lowest_cost_uses_the_price_book() -> None:
    pricey = _deployment("pricey")
    cheap = _deployment("cheap")
    cheap.price_model = "gpt-4o-mini"
    router = Router([pricey, cheap], strategy="lowest-cost")
    assert {router.pick([pricey, cheap]).id for _ in range(10)} == {"cheap"}
    assert isinstance(cheap.book, PriceBook)

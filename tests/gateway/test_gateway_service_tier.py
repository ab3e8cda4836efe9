"""Calls are priced at the service tier that served them, and the ledger says which.

The expected cost of each call is computed here from the bundled catalogue's own rates
(its JSON file, read directly), not by the pricing engine: prompt tokens × the tier's
input rate + completion tokens × the tier's output rate, in exact decimals. The mock
provider echoes the requested ``service_tier`` as OpenAI does (chat and Responses, in the
body and in every stream chunk), and reports exactly ``max_tokens`` completion tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from importlib import resources
from typing import Any

import openai
import orjson
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, make_config
from ledger_rows import event_rows
from limits_helpers import Admin

from spendgate.gateway.deployments import billed_tier
from spendgate.providers.mock import MockServer

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
PROMPT_TOKENS = 5  # the mock: 4 per message + ceil(2 / 4)
OUTPUT_TOKENS = 40


def catalogue_rates(model: str, tier: str | None) -> tuple[Decimal, Decimal]:
    """(input, output) USD per token of ``openai/<model>`` at ``tier`` (None: standard)."""
    raw = resources.files("spendgate.catalogue").joinpath("data/catalogue.json").read_bytes()
    (entry,) = [m for m in orjson.loads(raw)["models"] if m["id"] == f"openai/{model}"]
    price = entry["prices"][-1]
    rates = dict(price["rates"])
    if tier is not None:
        rates.update(price["service_tiers"][tier]["rates"])
    return Decimal(rates["input"]), Decimal(rates["output"])


def expected_nanos(
    model: str, tier: str | None, prompt: int = PROMPT_TOKENS, output: int = OUTPUT_TOKENS
) -> int:
    inp, out = catalogue_rates(model, tier)
    exact = (inp * prompt + out * output) * 1_000_000_000
    assert exact == exact.to_integral_value()  # these rates are whole nano-USD per token
    return int(exact)


@pytest.fixture(scope="module")
def gw(
    mock_server: MockServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("service-tier")
    models = [
        {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_base": mock_server.base_url}}
        for name in ("gpt-4o", "gpt-5-mini")
    ]
    config = make_config(
        mock_server.base_url,
        tmp / "tier.db",
        tmp / "journal",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"key_cache_ttl_seconds": 60, "database_url": database_url},
    )
    with GatewayServer(config) as server:
        yield server


@pytest.fixture
def client(gw: GatewayServer, mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def ledger(gw: GatewayServer, database_url: str) -> str:
    """The gateway's database (SQLite or PostgreSQL), read by :func:`_row`."""
    return database_url


def _row(ledger: str, request_id: str) -> dict[str, Any]:
    (row,) = event_rows(ledger, request_id)
    return row


CASES = [("gpt-4o", "priority"), ("gpt-5-mini", "priority"), ("gpt-5-mini", "flex"), ("gpt-4o", None)]


@pytest.mark.parametrize(("model", "tier"), CASES)
def test_chat_is_billed_at_the_tier_that_served_it(
    client: openai.OpenAI, ledger: str, model: str, tier: str | None
) -> None:
    extra: dict[str, Any] = {} if tier is None else {"service_tier": tier}
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, max_tokens=OUTPUT_TOKENS, **extra
    )
    reply = raw.parse()
    assert reply.service_tier == (tier or "default")
    nanos = expected_nanos(model, tier)
    assert Decimal(raw.headers["x-spendgate-response-cost"]) * 1_000_000_000 == nanos
    row = _row(ledger, raw.headers["x-spendgate-request-id"])
    assert int(row["cost_nanos"]) == nanos
    assert row["service_tier"] == tier
    assert (row["input_tokens"], row["output_tokens"]) == (PROMPT_TOKENS, OUTPUT_TOKENS)


@pytest.mark.parametrize(("model", "tier"), CASES)
def test_streamed_chat_is_billed_at_the_tier_that_served_it(
    client: openai.OpenAI, ledger: str, model: str, tier: str | None
) -> None:
    extra: dict[str, Any] = {} if tier is None else {"service_tier": tier}
    with client.chat.completions.with_streaming_response.create(
        model=model,
        messages=MESSAGES,
        max_tokens=OUTPUT_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    ) as response:
        request_id = response.headers["x-spendgate-request-id"]
        chunks = list(response.parse())
    assert {c.service_tier for c in chunks} == {tier or "default"}
    nanos = expected_nanos(model, tier)
    usage: Any = chunks[-1].usage
    assert Decimal(str(usage.model_extra["cost"])) * 1_000_000_000 == nanos  # the in-stream cost agrees
    row = _row(ledger, request_id)
    assert int(row["cost_nanos"]) == nanos
    assert row["service_tier"] == tier


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "tier"), [("gpt-4o", "priority"), ("gpt-5-mini", "flex")])
def test_responses_are_billed_at_the_tier_that_served_them(
    client: openai.OpenAI, ledger: str, model: str, tier: str, stream: bool
) -> None:
    args: dict[str, Any] = {
        "model": model,
        "input": "hi",
        "max_output_tokens": OUTPUT_TOKENS,
        "service_tier": tier,
    }
    if stream:
        with client.responses.with_streaming_response.create(stream=True, **args) as response:
            request_id = response.headers["x-spendgate-request-id"]
            events = list(response.parse())
        final: Any = events[-1].response
    else:
        raw = client.responses.with_raw_response.create(**args)
        request_id = raw.headers["x-spendgate-request-id"]
        final = raw.parse()
    assert final.service_tier == tier
    row = _row(ledger, request_id)
    assert int(row["cost_nanos"]) == expected_nanos(model, tier)
    assert row["service_tier"] == tier


@pytest.mark.parametrize(("requested", "billed"), [("priority", "priority"), ("flex", None), ("auto", None)])
def test_a_tier_the_answer_does_not_report_is_billed_only_when_dearer(
    client: openai.OpenAI, ledger: str, requested: str, billed: str | None
) -> None:
    # Legacy completions answers carry no service_tier: the request's counts if it costs more.
    raw = client.completions.with_raw_response.create(
        model="gpt-4o",
        prompt="abcd",
        max_tokens=OUTPUT_TOKENS,
        extra_body={"service_tier": requested},
    )
    row = _row(ledger, raw.headers["x-spendgate-request-id"])
    assert int(row["cost_nanos"]) == expected_nanos("gpt-4o", billed, prompt=1)
    assert row["service_tier"] == billed


def test_the_worst_case_is_reserved_at_the_requested_tier(gw: GatewayServer, mock: MockServer) -> None:
    """A budget between the standard and the priority worst case: priority is refused."""
    output = 1_000
    standard = expected_nanos("gpt-4o", None, output=output)
    priority = expected_nanos("gpt-4o", "priority", output=output)
    budget = (standard + priority) // 2
    with Admin(gw.base_url) as admin:
        key = admin.key(max_budget=budget / 1e9, budget_duration="1d")
    with openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=30) as c:
        with pytest.raises(openai.APIStatusError) as refused:
            c.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=output, service_tier="priority"
            )
        assert refused.value.status_code == 402
        reply = c.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=output)
        assert reply.service_tier == "default"


@pytest.mark.parametrize(
    ("served", "requested", "billed"),
    [
        ("standard", "priority", None),  # a priority request served (and charged) at standard
        ("priority", None, "priority"),  # a project whose default tier is priority
        ("flex", "flex", "flex"),
        (None, "priority", "priority"),
        (None, "flex", None),  # a discount the upstream did not confirm
        ("scale", None, None),  # no rates of its own: standard
    ],
)
def test_billed_tier(served: str | None, requested: str | None, billed: str | None) -> None:
    assert billed_tier(served, requested) == billed

"""A batch's worst case, reserved at creation: each line priced where it will be served, at
the batch tier (long-context tiers, margins and the catalogue's output limit included), and
never below what the line really costs."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import pytest

import spendgate
from spendgate.batches import (
    BatchRequest,
    line_worst_case,
    line_worst_tokens,
    parse_anthropic_requests,
    parse_openai_input,
    worst_case_nanos,
)
from spendgate.config import parse_config
from spendgate.core.pricing.calculator import Adjustment
from spendgate.core.usage import (
    Usage,
    from_anthropic_message,
    from_openai_chat,
    from_openai_completion,
    from_openai_embedding,
    from_openai_responses,
)
from spendgate.gateway.deployments import Deployment, build_deployments
from spendgate.providers.mock import anthropic_api, openai_api, openai_media, openai_responses
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.options import MockOptions

SOMEWHERE = "http://127.0.0.1:9/v1"
DEFAULT_OUTPUT = 1000
MODEL_LIST: list[dict[str, Any]] = [
    {
        "model_name": "plain",
        "litellm_params": {
            "model": "openai/plain-model",
            "api_base": SOMEWHERE,
            "input_cost_per_token": "2e-6",
            "output_cost_per_token": "8e-6",
            "input_cost_per_token_batches": "1e-6",
            "output_cost_per_token_batches": "4e-6",
        },
    },
    {
        "model_name": "long",
        "litellm_params": {
            "model": "openai/long-model",
            "api_base": SOMEWHERE,
            "input_cost_per_token": "1e-6",
            "output_cost_per_token": "4e-6",
            "input_cost_per_token_above_200k_tokens": "2e-6",
            "output_cost_per_token_above_200k_tokens": "6e-6",
        },
    },
    {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": SOMEWHERE}},
    {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": SOMEWHERE}},
    {
        "model_name": "embed",
        "litellm_params": {"model": "openai/text-embedding-3-small", "api_base": SOMEWHERE},
    },
    {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-6"}},
    {"model_name": "unpriced", "litellm_params": {"model": "openai/no-such-model-x", "api_base": SOMEWHERE}},
]


def deployments(adjustment: Adjustment | None = None) -> dict[str, Deployment]:
    config = parse_config({"model_list": MODEL_LIST}, environ={})
    built = build_deployments(config, spendgate.default_price_book(), lambda provider, model: adjustment)
    return {d.group: d for d in built}


DEPLOYMENTS = deployments()


def requests_of(endpoint: str, *bodies: dict[str, Any]) -> list[BatchRequest]:
    data = b"".join(
        orjson.dumps({"custom_id": f"r{i}", "method": "POST", "url": endpoint, "body": body}) + b"\n"
        for i, body in enumerate(bodies)
    )
    return parse_openai_input(
        data, endpoint=endpoint, may_use=lambda m: True, groups=DEPLOYMENTS.__contains__
    )


def chat(model: str, text: str = "x" * 40, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def test_a_simple_line_costs_its_hand_computed_worst_case() -> None:
    # 14 prompt tokens (4 + 40 characters / 4) at the batch input rate, 100 × 2 choices at
    # the batch output rate.
    (request,) = requests_of("/v1/chat/completions", chat("plain", max_tokens=100, n=2))
    assert (request.prompt_tokens, request.max_output, request.choices) == (14, 100, 2)
    plain = DEPLOYMENTS["plain"]
    # Rates in nano-USD per token: batch input 1000, batch output 4000.
    assert line_worst_case(plain, request, DEFAULT_OUTPUT) == 14 * 1000 + 200 * 4000 == 814_000
    assert line_worst_tokens(plain, request, DEFAULT_OUTPUT) == 14 + 200


def test_without_a_cap_the_catalogue_output_limit_counts_else_the_default() -> None:
    (gpt,) = requests_of("/v1/chat/completions", chat("gpt-4o"))
    assert DEPLOYMENTS["gpt-4o"].max_output_tokens() == 16384
    # gpt-4o's batch rates: $1.25 / $5 per million tokens, 1250 / 5000 nano-USD a token.
    assert (
        line_worst_case(DEPLOYMENTS["gpt-4o"], gpt, DEFAULT_OUTPUT) == 14 * 1250 + 16384 * 5000 == 81_937_500
    )
    (plain,) = requests_of("/v1/chat/completions", chat("plain"))
    assert DEPLOYMENTS["plain"].max_output_tokens() is None
    assert line_worst_case(DEPLOYMENTS["plain"], plain, DEFAULT_OUTPUT) == 14 * 1000 + DEFAULT_OUTPUT * 4000
    assert line_worst_tokens(DEPLOYMENTS["plain"], plain, 0) == 14


def test_a_long_context_line_is_priced_at_its_tier() -> None:
    # Without batch rates of its own, a model's batch rates are half its standard ones, its
    # long-context rates included: 0.5 / 2 per million up to 200k prompt tokens, 1 / 3 above.
    long = DEPLOYMENTS["long"]
    short, above = requests_of(
        "/v1/chat/completions",
        chat("long", "x" * 400, max_tokens=10),
        chat("long", "x" * 840_000, max_tokens=10),
    )
    assert (short.prompt_tokens, above.prompt_tokens) == (104, 210_004)
    assert line_worst_case(long, short, DEFAULT_OUTPUT) == 104 * 500 + 10 * 2000 == 72_000
    assert line_worst_case(long, above, DEFAULT_OUTPUT) == 210_004 * 1000 + 10 * 3000 == 210_034_000
    real = long.price(Usage(input_tokens=210_004, output_tokens=10), served_tier="batch")
    assert real.total_nanos == 210_034_000


def test_a_model_without_a_price_reserves_nothing() -> None:
    (request,) = requests_of("/v1/chat/completions", chat("unpriced", max_tokens=10))
    assert line_worst_case(DEPLOYMENTS["unpriced"], request, DEFAULT_OUTPUT) == 0


def test_the_deployments_margin_is_part_of_the_worst_case() -> None:
    (request,) = requests_of("/v1/chat/completions", chat("plain", max_tokens=100, n=2))
    with_margin = deployments(Adjustment(margin=Decimal("0.1")))["plain"]
    assert line_worst_case(with_margin, request, DEFAULT_OUTPUT) == 895_400


def test_the_batch_worst_case_is_the_sum_of_its_lines() -> None:
    requests = requests_of(
        "/v1/chat/completions",
        chat("plain", max_tokens=100, n=2),
        chat("plain", "y" * 8),
        chat("plain", max_tokens=0),
    )
    each = partial(line_worst_case, DEPLOYMENTS["plain"], default_output=DEFAULT_OUTPUT)
    assert worst_case_nanos(requests, lambda r: each(r)) == 814_000 + (6_000 + 4_000_000) + 14_000
    assert worst_case_nanos([], lambda r: 1) == 0


_Build = Callable[[dict[str, Any], Controls, MockOptions], dict[str, Any]]
MOCK_CASES: list[tuple[str, str, _Build, Callable[[object], Usage], dict[str, Any]]] = [
    ("/v1/chat/completions", "gpt-4o", openai_api.chat_completion_payload, from_openai_chat, chat("gpt-4o")),
    (
        "/v1/chat/completions",
        "gpt-4o-mini",
        openai_api.chat_completion_payload,
        from_openai_chat,
        chat("gpt-4o-mini", "z" * 333, max_completion_tokens=77, n=3),
    ),
    (
        "/v1/chat/completions",
        "plain",
        openai_api.chat_completion_payload,
        from_openai_chat,
        {
            "model": "plain",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a" * 99}, {"type": "text", "text": "b"}],
                },
            ],
            "max_tokens": 5,
        },
    ),
    (
        "/v1/chat/completions",
        "long",
        openai_api.chat_completion_payload,
        from_openai_chat,
        chat("long", "q" * 801_000),
    ),
    (
        "/v1/completions",
        "gpt-4o-mini",
        openai_api.completion_payload,
        from_openai_completion,
        {"model": "gpt-4o-mini", "prompt": ["one", "two three"], "max_tokens": 12, "n": 2, "best_of": 3},
    ),
    (
        "/v1/completions",
        "plain",
        openai_api.completion_payload,
        from_openai_completion,
        {"model": "plain", "prompt": [[1, 2, 3], [4]]},
    ),
    (
        "/v1/embeddings",
        "embed",
        openai_media.embeddings_payload,
        from_openai_embedding,
        {"model": "embed", "input": ["a" * 50, "b" * 7]},
    ),
    (
        "/v1/responses",
        "gpt-4o",
        openai_responses.response_payload,
        from_openai_responses,
        {"model": "gpt-4o", "input": "c" * 123, "instructions": "answer", "max_output_tokens": 40},
    ),
]
CONTROLS = [
    Controls(),
    Controls(cached_tokens=10),
    Controls(reasoning_tokens=8),
    Controls(cached_tokens=5, reasoning_tokens=3),
]


@pytest.mark.parametrize("controls", CONTROLS, ids=["plain", "cached", "reasoning", "both"])
@pytest.mark.parametrize(("endpoint", "group", "build", "usage_of", "body"), MOCK_CASES)
def test_the_worst_case_covers_what_the_mock_provider_answers(
    endpoint: str,
    group: str,
    build: _Build,
    usage_of: Callable[[object], Usage],
    body: dict[str, Any],
    controls: Controls,
) -> None:
    (request,) = requests_of(endpoint, body)
    deployment = DEPLOYMENTS[group]
    answer = build({**body, "model": deployment.target.model}, controls, MockOptions())
    real = deployment.price(usage_of(answer), served_tier="batch")
    assert real.priced and real.total_nanos > 0
    assert line_worst_case(deployment, request, DEFAULT_OUTPUT) >= real.total_nanos


@pytest.mark.parametrize("controls", CONTROLS, ids=["plain", "cached", "reasoning", "both"])
def test_the_worst_case_covers_what_the_mock_anthropic_answers(controls: Controls) -> None:
    params = [
        {
            "model": "claude",
            "max_tokens": 300,
            "system": "s" * 50,
            "messages": [{"role": "user", "content": "hi"}],
        },
        {
            "model": "claude",
            "max_tokens": 2,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "t" * 400}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "and?"},
            ],
        },
    ]
    requests = parse_anthropic_requests(
        [{"custom_id": f"r{i}", "params": p} for i, p in enumerate(params)],
        may_use=lambda m: True,
        groups=DEPLOYMENTS.__contains__,
    )
    claude = DEPLOYMENTS["claude"]
    for request in requests:
        answer = anthropic_api.message_payload(
            {**request.body, "model": claude.target.model}, controls, MockOptions()
        )
        real = claude.price(from_anthropic_message(answer), served_tier="batch")
        assert real.priced and real.total_nanos > 0
        assert line_worst_case(claude, request, DEFAULT_OUTPUT) >= real.total_nanos

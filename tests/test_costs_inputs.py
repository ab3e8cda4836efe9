"""What ``completion_cost``, ``price`` and ``cost_per_token`` accept as usage (issue #16,
item 4): a spendgate Usage, the official SDKs' usage objects, or a dict in either
provider's shape; anything else is a TypeError that says what is accepted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

import spendgate
from spendgate import Usage

D = Decimal

# gpt-4o: 2.50 in, 1.25 cached, 10 out per 1M; 1000 prompt (600 cached), 500 completion.
GPT_4O = D("0.001") + D("0.00075") + D("0.005")
# claude-sonnet-4-5: 3 in, 0.30 cache read, 3.75 5-minute write, 15 out per 1M; Anthropic's
# input_tokens exclude the 2000 read and 500 written.
SONNET = D("0.003") + D("0.0006") + D("0.001875") + D("0.0045")

OPENAI_SHAPES: list[Any] = [
    Usage(input_tokens=1000, cache_read_tokens=600, output_tokens=500),
    CompletionUsage(
        prompt_tokens=1000,
        completion_tokens=500,
        total_tokens=1500,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=600),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=0),
    ),
    ResponseUsage(
        input_tokens=1000,
        output_tokens=500,
        total_tokens=1500,
        input_tokens_details=InputTokensDetails(cached_tokens=600, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    ),
    {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 600}},
    {
        "input_tokens": 1000,
        "output_tokens": 500,
        "total_tokens": 1500,
        "input_tokens_details": {"cached_tokens": 600},
    },
]
ANTHROPIC_SHAPES: list[Any] = [
    AnthropicUsage(
        input_tokens=1000, output_tokens=300, cache_read_input_tokens=2000, cache_creation_input_tokens=500
    ),
    {
        "input_tokens": 1000,
        "output_tokens": 300,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 500,
    },
]


@pytest.mark.parametrize("usage", OPENAI_SHAPES, ids=lambda u: type(u).__name__)
def test_openai_usage_in_every_shape(usage: Any) -> None:
    assert spendgate.completion_cost(model="gpt-4o", usage=usage) == GPT_4O
    assert spendgate.price("gpt-4o", usage).total == GPT_4O
    assert sum(spendgate.cost_per_token("gpt-4o", usage_object=usage)) == GPT_4O


@pytest.mark.parametrize("usage", ANTHROPIC_SHAPES, ids=lambda u: type(u).__name__)
def test_anthropic_usage_in_every_shape(usage: Any) -> None:
    assert spendgate.completion_cost(model="claude-sonnet-4-5", usage=usage) == SONNET
    b = spendgate.price("claude-sonnet-4-5", usage)
    assert (b.usage.input_tokens, b.usage.cache_read_tokens, b.usage.cache_write_tokens) == (3500, 2000, 500)


@pytest.mark.parametrize(
    "bad",
    [42, "1000 tokens", 1.5, [1000, 500], (1000, 500), object(), {"tokens": 5}, {}],
    ids=["int", "str", "float", "list", "tuple", "object", "dict-without-usage", "empty-dict"],
)
def test_anything_else_is_a_type_error_that_says_what_is_accepted(bad: object) -> None:
    for call in (
        lambda: spendgate.completion_cost(model="gpt-4o", usage=bad),
        lambda: spendgate.price("gpt-4o", bad),
        lambda: spendgate.cost_per_token("gpt-4o", usage_object=bad),
    ):
        with pytest.raises(TypeError) as info:
            call()
        message = str(info.value)
        assert "spendgate Usage" in message and "OpenAI or Anthropic SDK usage object" in message
        assert "prompt_tokens" in message and "input_tokens" in message


def test_a_dict_in_a_usage_shape_with_bad_counts_names_the_field() -> None:
    with pytest.raises(spendgate.UsageError, match="prompt_tokens"):
        spendgate.completion_cost(model="gpt-4o", usage={"prompt_tokens": -5, "completion_tokens": 1})


def test_cost_per_token_fast_path_equals_a_full_calculation_for_every_model() -> None:
    # cost_per_token's plain-token path skips building a Usage and a breakdown; for every
    # bundled model it must give what the full calculation gives (or refuse the same way).
    from spendgate.catalogue.bundled import bundled_catalogue

    for entry in bundled_catalogue():
        for prompt, completion in ((1234, 567), (0, 0), (0, 9)):
            try:
                fast: object = spendgate.cost_per_token(entry.id, prompt, completion)
            except spendgate.UnpricedModelError as exc:
                fast = ("unpriced", str(exc))
            usage = Usage(input_tokens=prompt, output_tokens=completion)
            try:
                full: object = spendgate.cost_per_token(entry.id, usage_object=usage)
            except spendgate.UnpricedModelError as exc:
                full = ("unpriced", str(exc))
            assert fast == full, (entry.id, prompt, completion)

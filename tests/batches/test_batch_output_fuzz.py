"""Property: whatever a provider writes on a line (any JSON, shaped like usage or not), the
pricer counts it exactly once, as succeeded, failed or invalid, and never raises: one odd
line must not keep a whole batch from being settled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import spendgate
from spendgate.batches.output import price_output_sync
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

KEYS = [
    "usage", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens",
    "object", "type", "model", "choices", "message", "annotations", "output", "data", "created",
    "prompt_tokens_details", "cached_tokens", "completion_tokens_details", "reasoning_tokens",
    "input_tokens_details", "output_tokens_details", "cache_read_input_tokens",
    "cache_creation_input_tokens", "cache_creation", "ephemeral_1h_input_tokens", "server_tool_use",
    "web_search_requests", "stop_reason", "server_side_tool_usage_details", "web_search_calls",
    "seconds", "duration",
]  # fmt: skip
WORDS = ["chat.completion", "response", "list", "text_completion", "message", "gpt-4o", "no-such-model"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**7)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([*WORDS, "url_citation", "web_search_call"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=30,
)


def batch_price(model: str, usage: Usage) -> CostBreakdown:
    return spendgate.price(model, usage, service_tier="batch", at=AT)


@settings(max_examples=250, deadline=None)
@given(JSON, st.integers(100, 599), JSON)
def test_any_line_is_counted_once_and_never_raises(body: Any, status: int, error: Any) -> None:
    lines = [
        orjson.dumps({"custom_id": "x", "response": {"status_code": status, "body": body}, "error": None}),
        orjson.dumps({"custom_id": "x", "response": {"status_code": status, "body": body}, "error": error}),
        orjson.dumps(body),
    ]
    for line in lines:
        totals = price_output_sync([line], batch_price, api="openai")
        assert totals.lines == 1 and totals.cost_nanos >= 0
        assert sum(totals.cost_items.values()) == totals.cost_nanos
    for result in ({"type": "succeeded", "message": body}, body):
        totals = price_output_sync(
            [orjson.dumps({"custom_id": "x", "result": result})], batch_price, api="anthropic"
        )
        assert totals.lines == 1 and totals.cost_nanos >= 0

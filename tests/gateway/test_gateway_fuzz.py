"""Random request bodies never get a 500: every answer is a success or an OpenAI-shaped error."""

from __future__ import annotations

from typing import Any

import httpx
from gateway_helpers import MASTER_KEY, GatewayServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

scalars = st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=8)
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer"]) | json_values},
        optional={
            "content": st.text(max_size=20) | json_values,
            "tool_calls": json_values,
            "tool_call_id": json_values,
        },
    )
    | json_values,
    max_size=4,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4o", "claude-sonnet-4-6", "nope"]) | json_values,
        "messages": messages | json_values,
        "max_tokens": st.integers(-2, 20) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "temperature": json_values,
        "stop": json_values,
        "user": json_values,
        "metadata": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/embeddings"]))
def test_random_bodies_never_500(gateway: GatewayServer, body: dict[str, Any], path: str) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-mock-completion-tokens": "2"}
    response = httpx.post(f"{gateway.base_url}{path}", json=body, headers=headers, timeout=20)
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.headers["x-spendgate-request-id"]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}

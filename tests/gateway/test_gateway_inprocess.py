"""The gateway in-process (httpx.ASGITransport) with upstreams faked by httpx.MockTransport:
Azure and Anthropic wire formats, estimated and unpriced usage, upstream credential errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from spendgate.config import parse_config
from spendgate.errors import BudgetExceeded, LimitExceeded, RateLimited
from spendgate.gateway.admission import AdmissionRequest, Admitted
from spendgate.ledger.events import SpendEvent
from spendgate.providers.openai_compat import ChatStreamRelay
from spendgate.server import build_app

CHAT: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 4,
}
REPLY = {
    "id": "x",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "abcdefgh"}, "finish_reason": "stop"}
    ],
}


class ListSink:
    def __init__(self) -> None:
        self.events: list[SpendEvent] = []

    def record(self, event: SpendEvent) -> None:
        self.events.append(event)


Handler = Callable[[httpx.Request], httpx.Response]


@contextlib.asynccontextmanager
async def _gateway(
    tmp_path: Path, deployment: dict[str, Any], handler: Handler, admission: Any = None, **general: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ListSink]]:
    general_settings: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        **general,
    }
    config = parse_config(
        {
            "model_list": [{"model_name": "m", **deployment}],
            "general_settings": general_settings,
            "router_settings": {"num_retries": 0},
        },
        environ={},
    )
    sink = ListSink()
    app = build_app(
        config,
        transport=httpx.MockTransport(handler),
        recorder_factory=lambda engine: sink,
        admission=admission,
    )
    async with app.starlette.router.lifespan_context(app.starlette):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            yield client, sink


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


async def test_azure_deployment_url_key_and_base_model_price(
    tmp_path: Path, seen: list[httpx.Request]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**REPLY, "usage": {"prompt_tokens": 10, "completion_tokens": 4}})

    deployment = {
        "litellm_params": {"model": "azure/prod-gpt4o", "api_base": "https://acme.openai.azure.com",
                           "api_key": "az-key", "api_version": "2024-10-21"},
        "model_info": {"base_model": "gpt-4o"},
    }  # fmt: skip
    async with _gateway(tmp_path, deployment, handler) as (client, sink):
        response = await client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
    request = seen[0]
    assert str(request.url) == (
        "https://acme.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == "az-key" and "authorization" not in request.headers
    (event,) = sink.events
    assert event.provider == "azure" and event.model == "prod-gpt4o" and not event.unpriced
    assert event.cost_nanos > 0 and event.resolved_model is not None and "gpt-4o" in event.resolved_model


async def test_answer_without_usage_is_estimated(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=REPLY)

    deployment = {"litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up"}}
    async with _gateway(tmp_path, deployment, handler) as (client, sink):
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and response.json() == REPLY
    (event,) = sink.events
    assert event.estimated and event.usage.output_tokens == 2  # "abcdefgh": 8 characters
    assert event.usage.input_tokens == 4 + 3  # one message: 4 + ceil(11 / 4)


async def test_model_without_price_is_recorded_unpriced(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**REPLY, "usage": {"prompt_tokens": 10, "completion_tokens": 4}})

    deployment = {
        "litellm_params": {"model": "hosted_vllm/mystery-model-7b", "api_base": "http://vllm:8000/v1"}
    }
    async with _gateway(tmp_path, deployment, handler) as (client, sink):
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.headers["x-spendgate-response-cost"] == "unpriced"
    (event,) = sink.events
    assert event.unpriced and event.cost_nanos == 0 and event.unpriced_reason
    assert event.usage.input_tokens == 10


async def test_upstream_refusing_the_gateway_key_is_502(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "bad key", "type": "auth"}})

    deployment = {"litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up"}}
    async with _gateway(tmp_path, deployment, handler) as (client, sink):
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_auth_failed"
    assert [e.status.value for e in sink.events] == ["error"]


def _claude_message(text: str, stop_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"id": "msg", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
            "usage": usage}  # fmt: skip


def _answering_claude(seen: list[httpx.Request], text: str) -> Any:
    """An Anthropic upstream that records each request and answers ``text``."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        usage = {"input_tokens": 9, "output_tokens": 2}
        return httpx.Response(200, json=_claude_message(text, "end_turn", usage))

    return handler


async def test_anthropic_wire_format(tmp_path: Path, seen: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        usage = {"input_tokens": 5, "output_tokens": 4, "cache_read_input_tokens": 3}
        return httpx.Response(200, json=_claude_message("hi", "max_tokens", usage))

    deployment = {"litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_key": "ak"}}
    chat = {**CHAT, "messages": [{"role": "system", "content": "sys"}, *CHAT["messages"]], "stop": "END"}
    async with _gateway(tmp_path, deployment, handler) as (client, sink):
        response = await client.post("/v1/chat/completions", json=chat)
    sent = orjson.loads(seen[0].content)
    assert str(seen[0].url) == "https://api.anthropic.com/v1/messages"
    assert seen[0].headers["x-api-key"] == "ak" and seen[0].headers["anthropic-version"] == "2023-06-01"
    assert sent["system"] == "sys" and sent["max_tokens"] == 4 and sent["stop_sequences"] == ["END"]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    reply = response.json()
    assert (
        reply["choices"][0]["finish_reason"] == "length" and reply["choices"][0]["message"]["content"] == "hi"
    )
    assert reply["usage"] == {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12,
                              "prompt_tokens_details": {"cached_tokens": 3},
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3}  # fmt: skip
    (event,) = sink.events
    assert (event.usage.input_tokens, event.usage.cache_read_tokens) == (8, 3)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
         "messages[0].content[0].image_url"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
         "messages[0].content[0].text"),
        ({"stop": 5}, "stop"),
        ({"stop": ["END", 5]}, "stop"),
        ({"tools": [{"type": "function", "function": "x"}]}, "tools[0].function"),
        ({"tool_choice": 5}, "tool_choice"),
        ({"messages": [{"role": "system", "content": [{"type": "text", "text": 5}]}, *CHAT["messages"]]},
         "messages[0].content[0].text"),
        ({"messages": [{"role": "assistant", "content": "x",
                        "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({"messages": [{"role": "assistant", "content": "x", "tool_calls": [{"function": "f"}]}]},
         "messages[0].tool_calls[0].function"),
    ],
)  # fmt: skip
async def test_a_chat_body_anthropic_cannot_take_is_a_422_naming_the_field(
    tmp_path: Path, seen: list[httpx.Request], change: dict[str, Any], param: str
) -> None:
    """Translated for an Anthropic deployment, a field of a shape the translation cannot carry
    is refused naming it (no Python error text), and nothing is sent upstream."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    deployment = {"litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_key": "ak"}}
    async with _gateway(tmp_path, deployment, handler) as (client, _):
        response = await client.post("/v1/chat/completions", json={**CHAT, **change})
    error = response.json()["error"]
    assert (response.status_code, error["param"], error["code"]) == (422, param, "invalid_value")
    assert "object" not in error["message"].split(":", 1)[0] and "attribute" not in error["message"]
    assert seen == []


async def test_tool_call_arguments_as_an_object_and_tool_choice_objects_are_carried_over(
    tmp_path: Path, seen: list[httpx.Request]
) -> None:
    handler = _answering_claude(seen, "ok")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    messages = [*CHAT["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"}]  # fmt: skip
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    deployment = {"litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_key": "ak"}}
    async with _gateway(tmp_path, deployment, handler) as (client, _):
        for choice, expected in (({"type": "required"}, {"type": "any"}), ({"type": "allowed_tools"}, None)):
            body = {**CHAT, "messages": messages, "tools": tools, "tool_choice": choice}
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
            sent = orjson.loads(seen[-1].content)
            assert sent["messages"][1]["content"][0]["input"] == {"x": 1}  # not dropped
            assert sent.get("tool_choice") == expected


async def test_an_image_url_given_as_a_string_is_translated_as_a_link(
    tmp_path: Path, seen: list[httpx.Request]
) -> None:
    handler = _answering_claude(seen, "a cat")
    content = [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": "https://x.test/cat.png"},
    ]
    deployment = {"litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_key": "ak"}}
    async with _gateway(tmp_path, deployment, handler) as (client, _):
        response = await client.post(
            "/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": content}]}
        )
    assert response.status_code == 200
    sent = orjson.loads(seen[0].content)["messages"][0]["content"]
    assert sent[1] == {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}}


async def test_no_master_key_means_open_gateway_and_env_override(tmp_path: Path) -> None:
    config = parse_config(
        {"general_settings": {"master_key": "from-file"}}, environ={"SPENDGATE_MASTER_KEY": "from-env"}
    )
    assert config.general_settings.master_key == "from-env"


class RecordingAdmission:
    """Admits unless given an error to refuse with; remembers every call."""

    def __init__(self, refuse: LimitExceeded | None = None) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, Any]] = []

    async def admit(self, request: AdmissionRequest) -> Admitted:
        self.calls.append(("admit", request))
        if self.refuse is not None:
            raise self.refuse
        return Admitted(request.request_id, reserved_nanos=1, headers={"x-ratelimit-remaining-requests": "9"})

    async def admit_at(self, admitted: Admitted, deployment: Any) -> None:
        return None

    async def release_attempt(self, admitted: Admitted) -> None:
        return None

    async def settle(self, admitted: Admitted, cost_nanos: int, usage: Any) -> None:
        self.calls.append(("settle", cost_nanos))

    async def release(self, admitted: Admitted) -> None:
        self.calls.append(("release", admitted.request_id))


async def test_admission_is_asked_then_settled_or_released(tmp_path: Path) -> None:
    status = {"code": 200}

    def handler(request: httpx.Request) -> httpx.Response:
        usage = {"prompt_tokens": 10, "completion_tokens": 4}
        return httpx.Response(status["code"], json={**REPLY, "usage": usage})

    admission = RecordingAdmission()
    deployment = {"litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up"}}
    async with _gateway(tmp_path, deployment, handler, admission) as (client, sink):
        ok = await client.post(
            "/v1/chat/completions", json={**CHAT, "user": "cust-1", "metadata": {"tags": ["t"]}}
        )
        status["code"] = 503
        failed = await client.post("/v1/chat/completions", json=CHAT)
    assert ok.status_code == 200 and failed.status_code == 502
    assert ok.headers["x-ratelimit-remaining-requests"] == "9"
    (_, first), settled, (_, second), released = admission.calls
    assert (
        first.scopes.end_user == "cust-1" and first.scopes.tags == ("t",) and first.scopes.model_group == "m"
    )
    assert first.estimated_input_tokens > 0 and len(first.deployments) == 1
    assert settled == ("settle", sink.events[0].cost_nanos) and sink.events[0].cost_nanos > 0
    assert released == ("release", second.request_id)


async def test_a_stream_whose_metering_fails_still_releases_its_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly one of settle / release per admitted request, however a stream ends: when
    metering the ended stream fails, the reservation is released (as for a complete
    answer), not left held until its lease expires."""
    chunk = {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o",
             "choices": [{"index": 0, "delta": {"content": "abcd"}, "finish_reason": "stop"}]}  # fmt: skip
    sse = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    def broken_usage(self: ChatStreamRelay) -> None:
        raise RuntimeError("metering failed")

    monkeypatch.setattr(ChatStreamRelay, "usage", broken_usage)
    admission = RecordingAdmission()
    deployment = {"litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up"}}
    async with _gateway(tmp_path, deployment, handler, admission) as (client, sink):
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200 and b"abcd" in response.content
    (_, admitted), *ends = admission.calls
    assert ends == [("release", admitted.request_id)] and not sink.events


async def test_refused_admission_never_reaches_upstream(tmp_path: Path, seen: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=REPLY)

    deployment = {"litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up"}}
    limited = RateLimited(scope="key:k", kind="requests", limit=10, window_seconds=60, retry_after=2.2)
    async with _gateway(tmp_path, deployment, handler, RecordingAdmission(limited)) as (client, sink):
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert not seen and not sink.events

    over = BudgetExceeded(
        scope="team:t", window="1d", spend_nanos=10, reserved_nanos=0, limit_nanos=10,
        requested_nanos=5, reset_at=None, retry_after=None,
    )  # fmt: skip
    admission = RecordingAdmission(over)
    async with _gateway(tmp_path, deployment, handler, admission, budget_exceeded_status=402) as (client, _):
        response = await client.post("/v1/chat/completions", json=CHAT)
    error = response.json()["error"]
    assert response.status_code == 402 and error["type"] == "budget_exceeded" and error["code"] == "402"
    assert "team:t" in error["message"] and "retry-after" not in response.headers
    assert not seen

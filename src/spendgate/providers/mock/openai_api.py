"""OpenAI-shaped text generation: chat completions and (legacy) completions, and the model list.

Builders take the parsed request body and the request's :class:`Controls` and return the
response payload (or the stream's SSE events); they do no I/O, so the batch runner reuses them.
The Responses API is in :mod:`~spendgate.providers.mock.openai_responses`; embeddings, images
and audio in :mod:`~spendgate.providers.mock.openai_media`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import orjson

from spendgate.providers.mock._http import MockHTTPError, Reply, json_reply, new_id, now, openai_sse
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.generation import (
    FINGERPRINT,
    Plan,
    completion_tokens,
    read_model,
    read_positive_int,
    read_service_tier,
    wants_usage,
)
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.tokens import (
    chat_prompt_tokens,
    generate_text,
    input_tokens,
    message_text,
    text_pieces,
)

__all__ = [
    "MODELS",
    "chat_completion",
    "chat_completion_payload",
    "chat_id",
    "completion",
    "completion_payload",
    "list_models",
    "retrieve_model",
]

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "o3",
    "o4-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "gpt-image-1",
    "dall-e-3",
    "whisper-1",
    "gpt-4o-transcribe",
    "tts-1",
    "gpt-4o-mini-tts",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-1",
)


# ---------------------------------------------------------------------------- chat


def _chat_plan(body: dict[str, Any], controls: Controls, options: MockOptions) -> Plan:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockHTTPError(400, "messages must be a non-empty array", param="messages")
    per_choice = completion_tokens(body, controls, options, "max_completion_tokens", "max_tokens")
    return Plan(chat_prompt_tokens(messages), per_choice, read_positive_int(body, "n", 1), controls)


def chat_id(body: dict[str, Any]) -> str:
    """``chatcmpl-<digest>-<unique>``: the digest (12 hex digits of the SHA-256 of the last
    message's text) lets a client check that an answer is the one to its own request."""
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    text = message_text(last.get("content")) if isinstance(last, dict) else ""
    return new_id(f"chatcmpl-{hashlib.sha256(text.encode()).hexdigest()[:12]}-")


def chat_completion_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    model = read_model(body)
    plan = _chat_plan(body, controls, options)
    return _chat_payload(body, model, plan, controls)


def _chat_payload(body: dict[str, Any], model: str, plan: Plan, controls: Controls) -> dict[str, Any]:
    text = generate_text(plan.visible)
    payload: dict[str, Any] = {
        "id": chat_id(body),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
            for index in range(plan.choices)
        ],
        "service_tier": read_service_tier(body),
        "system_fingerprint": FINGERPRINT,
    }
    if not controls.no_usage:
        payload["usage"] = plan.usage()
    return payload


_CHAT_TEMPLATE = (
    b'{"id":"%s","object":"chat.completion","created":%d,"model":%s,"choices":%s,'
    b'"service_tier":"%s","system_fingerprint":"' + FINGERPRINT.encode() + b'"%s}'
)
_USAGE_TEMPLATE = (
    b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    b'"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def _usage_json(plan: Plan) -> bytes:
    total = plan.prompt + plan.completion
    return _USAGE_TEMPLATE % (plan.prompt, plan.completion, total, plan.cached, plan.reasoning)


@lru_cache(maxsize=1024)
def _chat_choices(visible: int, choices: int) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": generate_text(visible),
        "refusal": None,
        "annotations": [],
    }
    return orjson.dumps(
        [
            {"index": index, "message": message, "logprobs": None, "finish_reason": "stop"}
            for index in range(choices)
        ]
    )


def chat_completion(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/chat/completions``, streaming or not."""
    model = read_model(body)
    plan = _chat_plan(body, controls, options)
    if not body.get("stream"):
        # Spliced from cached pieces rather than dumped from a dict: this is the benchmark
        # route. It equals ``chat_completion_payload`` (tested).
        usage = b"" if controls.no_usage else b',"usage":' + _usage_json(plan)
        payload_bytes = _CHAT_TEMPLATE % (
            chat_id(body).encode(),
            now(),
            orjson.dumps(model),
            _chat_choices(plan.visible, plan.choices),
            read_service_tier(body).encode(),
            usage,
        )
        if controls.no_usage:
            return Reply(payload_bytes)
        return Reply(payload_bytes, input_tokens=plan.prompt, output_tokens=plan.completion)
    include_usage = wants_usage(body, controls)
    head = (
        b'{"id":"'
        + chat_id(body).encode()
        + b'","object":"chat.completion.chunk","created":'
        + str(now()).encode()
        + b',"model":'
        + orjson.dumps(model)
        + b',"service_tier":"'
        + read_service_tier(body).encode()
        + b'","system_fingerprint":"'
        + FINGERPRINT.encode()
        + (b'","usage":null,"choices":[' if include_usage else b'","choices":[')
    )
    events: list[bytes] = []
    for index in range(plan.choices):
        prefix = b"data: " + head + b'{"index":' + str(index).encode()
        events.append(
            prefix + b',"delta":{"role":"assistant","content":"","refusal":null},'
            b'"logprobs":null,"finish_reason":null}]}\n\n'
        )
        for piece in text_pieces(plan.visible):
            events.append(
                prefix
                + b',"delta":{"content":'
                + orjson.dumps(piece)
                + b'},"logprobs":null,"finish_reason":null}]}\n\n'
            )
        events.append(prefix + b',"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n')
    if include_usage:
        usage_head = head.replace(b'"usage":null,"choices":[', b'"choices":[')
        events.append(b"data: " + usage_head + b'],"usage":' + _usage_json(plan) + b"}\n\n")
    events.append(b"data: [DONE]\n\n")
    return plan.stream(events, include_usage)


# ---------------------------------------------------------------------------- completions


def _completion_plan(body: dict[str, Any], controls: Controls, options: MockOptions) -> Plan:
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list):
        raise MockHTTPError(400, "prompt must be a string or an array", param="prompt")
    per_choice = completion_tokens(body, controls, options, "max_tokens")
    choices = read_positive_int(body, "n", 1)
    best_of = read_positive_int(body, "best_of", choices)
    if best_of < choices:
        raise MockHTTPError(400, "best_of must be greater than or equal to n", param="best_of")
    return Plan(input_tokens(prompt), per_choice, choices, controls, generated=best_of)


def completion_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A non-streaming ``text_completion`` object."""
    model = read_model(body)
    plan = _completion_plan(body, controls, options)
    return _completion_payload(model, plan, controls)


def _completion_payload(model: str, plan: Plan, controls: Controls) -> dict[str, Any]:
    text = generate_text(plan.visible)
    payload: dict[str, Any] = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": now(),
        "model": model,
        "choices": [
            {"text": text, "index": index, "logprobs": None, "finish_reason": "stop"}
            for index in range(plan.choices)
        ],
        "system_fingerprint": FINGERPRINT,
    }
    if not controls.no_usage:
        payload["usage"] = plan.usage()
    return payload


def completion(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/completions``, streaming or not."""
    model = read_model(body)
    plan = _completion_plan(body, controls, options)
    if not body.get("stream"):
        payload = _completion_payload(model, plan, controls)
        return plan.reply(payload) if not controls.no_usage else json_reply(payload)
    include_usage = wants_usage(body, controls)
    base: dict[str, Any] = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": now(),
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }
    events: list[bytes] = []
    for index in range(plan.choices):
        for piece in text_pieces(plan.visible):
            choice = {"text": piece, "index": index, "logprobs": None, "finish_reason": None}
            events.append(openai_sse({**base, "choices": [choice]}))
        done = {"text": "", "index": index, "logprobs": None, "finish_reason": "stop"}
        events.append(openai_sse({**base, "choices": [done]}))
    if include_usage:
        events.append(openai_sse({**base, "choices": [], "usage": plan.usage()}))
    events.append(b"data: [DONE]\n\n")
    return plan.stream(events, include_usage)


# ---------------------------------------------------------------------------- models


def _model_object(model: str) -> dict[str, Any]:
    owner = "anthropic" if model.startswith("claude") else "openai"
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": owner}


def list_models() -> Reply:
    """``GET /v1/models``: a fixed list (any model name is accepted by the other routes)."""
    return json_reply({"object": "list", "data": [_model_object(model) for model in MODELS]})


def retrieve_model(model: str) -> Reply:
    """``GET /v1/models/{model}``: any name exists."""
    return json_reply(_model_object(model))

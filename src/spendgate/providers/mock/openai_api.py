"""OpenAI-shaped responses: chat, completions, responses, embeddings, images, audio, models.

Builders take the parsed request body and the request's :class:`Controls` and return the
response payload (or the stream's SSE events); they do no I/O, so the batch runner reuses them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import zlib
from functools import lru_cache
from typing import Any

import orjson

from spendgate.providers.mock._http import (
    MockHTTPError,
    Reply,
    anthropic_sse,
    json_reply,
    new_id,
    now,
    openai_sse,
)
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.tokens import (
    chat_prompt_tokens,
    count_tokens,
    generate_text,
    input_tokens,
    message_text,
    text_pieces,
)

__all__ = [
    "MODELS",
    "audio_speech",
    "audio_transcription",
    "chat_completion",
    "chat_completion_payload",
    "chat_id",
    "completion",
    "completion_payload",
    "completion_tokens",
    "embeddings",
    "embeddings_payload",
    "image_generation",
    "list_models",
    "response",
    "response_payload",
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

_FINGERPRINT = "fp_spendgate_mock"
_SERVICE_TIERS = frozenset(("default", "flex", "priority", "scale"))


# ---------------------------------------------------------------------------- shared


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MockHTTPError(400, "you must provide a model parameter", param="model")
    return model


def _positive_int(body: dict[str, Any], name: str, default: int, maximum: int = 128) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise MockHTTPError(400, f"{name} must be an integer in 1..{maximum}", param=name)
    return value


def completion_tokens(body: dict[str, Any], controls: Controls, options: MockOptions, *names: str) -> int:
    """Completion tokens per choice: the header, else the first maximum set in ``names``."""
    if controls.completion_tokens is not None:
        return controls.completion_tokens
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MockHTTPError(400, f"{name} must be a non-negative integer", param=name)
            return value
    return options.default_completion_tokens


def _service_tier(body: dict[str, Any]) -> str:
    tier = body.get("service_tier")
    return tier if isinstance(tier, str) and tier in _SERVICE_TIERS else "default"


def _chat_usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class _Plan:
    """The token arithmetic of one text-generation request: ``choices`` returned, out of
    ``generated`` (``best_of``; default ``choices``) generated and billed."""

    __slots__ = ("cached", "choices", "completion", "prompt", "reasoning", "visible")

    def __init__(
        self, prompt: int, per_choice: int, choices: int, controls: Controls, generated: int | None = None
    ) -> None:
        self.prompt = prompt
        self.choices = choices
        billed = choices if generated is None else generated
        reasoning = min(controls.reasoning_tokens, per_choice)
        self.visible = per_choice - reasoning
        self.reasoning = reasoning * billed
        self.completion = per_choice * billed
        self.cached = min(controls.cached_tokens, prompt)

    def usage(self) -> dict[str, Any]:
        return _chat_usage(self.prompt, self.completion, self.cached, self.reasoning)

    def reply(self, payload: Any) -> Reply:
        return json_reply(payload, input_tokens=self.prompt, output_tokens=self.completion)

    def stream(self, events: list[bytes], include_usage: bool) -> Reply:
        reported = include_usage
        return Reply(
            content_type=b"text/event-stream; charset=utf-8",
            events=events,
            input_tokens=self.prompt if reported else 0,
            output_tokens=self.completion if reported else 0,
        )


def _include_usage(body: dict[str, Any], controls: Controls) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage")) and not controls.no_usage


# ---------------------------------------------------------------------------- chat


def _chat_plan(body: dict[str, Any], controls: Controls, options: MockOptions) -> _Plan:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockHTTPError(400, "messages must be a non-empty array", param="messages")
    per_choice = completion_tokens(body, controls, options, "max_completion_tokens", "max_tokens")
    return _Plan(chat_prompt_tokens(messages), per_choice, _positive_int(body, "n", 1), controls)


def chat_id(body: dict[str, Any]) -> str:
    """``chatcmpl-<digest>-<unique>``: the digest (12 hex digits of the SHA-256 of the last
    message's text) lets a client check that an answer is the one to its own request."""
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    text = message_text(last.get("content")) if isinstance(last, dict) else ""
    return new_id(f"chatcmpl-{hashlib.sha256(text.encode()).hexdigest()[:12]}-")


def chat_completion_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    model = _model(body)
    plan = _chat_plan(body, controls, options)
    return _chat_payload(body, model, plan, controls)


def _chat_payload(body: dict[str, Any], model: str, plan: _Plan, controls: Controls) -> dict[str, Any]:
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
        "service_tier": _service_tier(body),
        "system_fingerprint": _FINGERPRINT,
    }
    if not controls.no_usage:
        payload["usage"] = plan.usage()
    return payload


_CHAT_TEMPLATE = (
    b'{"id":"%s","object":"chat.completion","created":%d,"model":%s,"choices":%s,'
    b'"service_tier":"%s","system_fingerprint":"' + _FINGERPRINT.encode() + b'"%s}'
)
_USAGE_TEMPLATE = (
    b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    b'"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def _usage_json(plan: _Plan) -> bytes:
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
    model = _model(body)
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
            _service_tier(body).encode(),
            usage,
        )
        if controls.no_usage:
            return Reply(payload_bytes)
        return Reply(payload_bytes, input_tokens=plan.prompt, output_tokens=plan.completion)
    include_usage = _include_usage(body, controls)
    head = (
        b'{"id":"'
        + chat_id(body).encode()
        + b'","object":"chat.completion.chunk","created":'
        + str(now()).encode()
        + b',"model":'
        + orjson.dumps(model)
        + b',"service_tier":"'
        + _service_tier(body).encode()
        + b'","system_fingerprint":"'
        + _FINGERPRINT.encode()
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


def _completion_plan(body: dict[str, Any], controls: Controls, options: MockOptions) -> _Plan:
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list):
        raise MockHTTPError(400, "prompt must be a string or an array", param="prompt")
    per_choice = completion_tokens(body, controls, options, "max_tokens")
    choices = _positive_int(body, "n", 1)
    best_of = _positive_int(body, "best_of", choices)
    if best_of < choices:
        raise MockHTTPError(400, "best_of must be greater than or equal to n", param="best_of")
    return _Plan(input_tokens(prompt), per_choice, choices, controls, generated=best_of)


def completion_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A non-streaming ``text_completion`` object."""
    model = _model(body)
    plan = _completion_plan(body, controls, options)
    return _completion_payload(model, plan, controls)


def _completion_payload(model: str, plan: _Plan, controls: Controls) -> dict[str, Any]:
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
        "system_fingerprint": _FINGERPRINT,
    }
    if not controls.no_usage:
        payload["usage"] = plan.usage()
    return payload


def completion(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/completions``, streaming or not."""
    model = _model(body)
    plan = _completion_plan(body, controls, options)
    if not body.get("stream"):
        payload = _completion_payload(model, plan, controls)
        return plan.reply(payload) if not controls.no_usage else json_reply(payload)
    include_usage = _include_usage(body, controls)
    base: dict[str, Any] = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": now(),
        "model": model,
        "system_fingerprint": _FINGERPRINT,
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


# ---------------------------------------------------------------------------- responses


def _responses_plan(body: dict[str, Any], controls: Controls, options: MockOptions) -> _Plan:
    items = body.get("input")
    if not isinstance(items, str | list):
        raise MockHTTPError(400, "input must be a string or an array", param="input")
    prompt = chat_prompt_tokens(items, body.get("instructions"))
    per_choice = completion_tokens(body, controls, options, "max_output_tokens")
    return _Plan(prompt, per_choice, 1, controls)


def _responses_usage(plan: _Plan) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt,
        "input_tokens_details": {"cached_tokens": plan.cached},
        "output_tokens": plan.completion,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning},
        "total_tokens": plan.prompt + plan.completion,
    }


def _response_object(body: dict[str, Any], model: str, status: str) -> dict[str, Any]:
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": now(),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": _service_tier(body),
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def response_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A completed, non-streaming ``response`` object (Responses API)."""
    model = _model(body)
    plan = _responses_plan(body, controls, options)
    return _response_done(body, model, plan, controls, _response_object(body, model, "completed"))


def _response_done(
    body: dict[str, Any], model: str, plan: _Plan, controls: Controls, obj: dict[str, Any]
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if plan.reasoning:
        output.append({"id": new_id("rs_"), "type": "reasoning", "summary": []})
    output.append(_message_item(new_id("msg_"), generate_text(plan.visible), "completed"))
    obj = {**obj, "status": "completed", "output": output}
    if not controls.no_usage:
        obj["usage"] = _responses_usage(plan)
    return obj


def response(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/responses``, streaming (named events ending in ``response.completed``) or not."""
    model = _model(body)
    plan = _responses_plan(body, controls, options)
    if not body.get("stream"):
        payload = response_payload(body, controls, options)
        return plan.reply(payload) if not controls.no_usage else json_reply(payload)
    started = _response_object(body, model, "in_progress")
    done = _response_done(body, model, plan, controls, started)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    index = 0
    if plan.reasoning:
        reasoning_item = done["output"][0]
        events.append({"type": "response.output_item.added", "output_index": 0, "item": reasoning_item})
        events.append({"type": "response.output_item.done", "output_index": 0, "item": reasoning_item})
        index = 1
    message = done["output"][index]
    item_id = message["id"]
    text = message["content"][0]["text"]
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    events.append(
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": _message_item(item_id, "", "in_progress"),
        }
    )
    events.append(
        {
            "type": "response.content_part.added",
            **where,
            "part": {"type": "output_text", "text": "", "annotations": []},
        }
    )
    events.extend(
        {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
        for piece in text_pieces(plan.visible)
    )
    events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
    events.append({"type": "response.content_part.done", **where, "part": message["content"][0]})
    events.append({"type": "response.output_item.done", "output_index": index, "item": message})
    events.append({"type": "response.completed", "response": done})
    encoded = [anthropic_sse({**event, "sequence_number": number}) for number, event in enumerate(events)]
    return plan.stream(encoded, not controls.no_usage)


# ---------------------------------------------------------------------------- embeddings


def _vector(text: str, dimensions: int) -> list[float]:
    # Multiples of 1/1024, exact in float32, so the base64 and float encodings agree.
    seed = zlib.crc32(text.encode()) | 1
    return [(((seed * (j + 1) * 2654435761) >> 7) % 1024) / 1024 - 0.5 for j in range(dimensions)]


def embeddings_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A ``list`` of embeddings; vectors are deterministic in the input text."""
    model = _model(body)
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        inputs: list[Any] = [value]
    elif isinstance(value, list) and value:
        inputs = value
    else:
        raise MockHTTPError(400, "input must be a string, an array of strings or of tokens", param="input")
    dimensions = _positive_int(body, "dimensions", options.embedding_dimensions, maximum=8192)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(item if isinstance(item, str) else repr(item), dimensions)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(input_tokens(item) for item in inputs)
    payload: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not controls.no_usage:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return payload


def embeddings(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/embeddings``."""
    payload = embeddings_payload(body, controls, options)
    usage = payload.get("usage")
    return json_reply(payload, input_tokens=usage["prompt_tokens"] if usage else 0)


# ---------------------------------------------------------------------------- images

# gpt-image-1 output tokens per image, by quality and size (OpenAI's published table).
_IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
# A 1×1 transparent PNG.
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def image_generation(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/images/generations``: ``n`` images; gpt-image-* models report token usage."""
    model = _model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise MockHTTPError(400, "prompt must be a string", param="prompt")
    n = _positive_int(body, "n", 1, maximum=10)
    size = body.get("size") or "auto"
    quality = body.get("quality") or "auto"
    created = now()
    if model.startswith(("gpt-image", "chatgpt-image")):
        tier = quality if quality in _IMAGE_TOKENS else "medium"
        per_image = _IMAGE_TOKENS[tier].get(size, _IMAGE_TOKENS[tier]["1024x1024"])
        text_tokens = count_tokens(prompt)
        output = per_image * n
        payload: dict[str, Any] = {
            "created": created,
            "background": body.get("background") or "opaque",
            "data": [{"b64_json": _PNG} for _ in range(n)],
            "output_format": body.get("output_format") or "png",
            "quality": tier,
            "size": size if size != "auto" else "1024x1024",
        }
        if controls.no_usage:
            return json_reply(payload)
        payload["usage"] = {
            "input_tokens": text_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
            "output_tokens": output,
            "total_tokens": text_tokens + output,
        }
        return json_reply(payload, input_tokens=text_tokens, output_tokens=output)
    if body.get("response_format") == "b64_json":
        data = [{"b64_json": _PNG, "revised_prompt": prompt} for _ in range(n)]
    else:
        data = [
            {"url": f"https://mock.invalid/images/{new_id('img_')}.png", "revised_prompt": prompt}
            for _ in range(n)
        ]
    return json_reply({"created": created, "data": data})


# ---------------------------------------------------------------------------- audio

_AUDIO_BYTES_PER_SECOND = 32_000  # 16 kHz, 16-bit mono PCM
_AUDIO_TOKENS_PER_SECOND = 10
_SPEECH_BYTES_PER_CHARACTER = 32
_SPEECH_TYPES = {
    "mp3": b"audio/mpeg",
    "opus": b"audio/opus",
    "aac": b"audio/aac",
    "flac": b"audio/flac",
    "wav": b"audio/wav",
    "pcm": b"audio/pcm",
}


def audio_transcription(form: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/audio/transcriptions`` (multipart): text plus duration (or token) usage.

    The duration is ``x-mock-audio-seconds``, else ``ceil(file bytes / 32000)`` (16 kHz 16-bit
    mono), at least 1. ``gpt-4o*-transcribe`` models report tokens instead: 10 audio tokens
    per second plus the prompt's text tokens in, the text's tokens out.
    """
    model = form.get("model")
    if not isinstance(model, str) or not model:
        raise MockHTTPError(400, "you must provide a model parameter", param="model")
    upload = form.get("file")
    if not isinstance(upload, bytes):
        raise MockHTTPError(400, "you must upload a file", param="file")
    if controls.audio_seconds is not None:
        seconds: float = controls.audio_seconds
    else:
        seconds = max(1, math.ceil(len(upload) / _AUDIO_BYTES_PER_SECOND))
    tokens = (
        controls.completion_tokens
        if controls.completion_tokens is not None
        else options.default_completion_tokens
    )
    text = generate_text(tokens)
    if form.get("response_format") == "text":
        return Reply(text.encode(), content_type=b"text/plain; charset=utf-8")
    payload: dict[str, Any] = {"text": text}
    if form.get("response_format") == "verbose_json":
        payload.update(task="transcribe", language="english", duration=seconds, segments=[])
    if controls.no_usage:
        return json_reply(payload)
    if "transcribe" in model and model.startswith("gpt-"):
        prompt = form.get("prompt")
        text_in = count_tokens(prompt) if isinstance(prompt, str) else 0
        audio_in = math.ceil(seconds * _AUDIO_TOKENS_PER_SECOND)
        payload["usage"] = {
            "type": "tokens",
            "input_tokens": audio_in + text_in,
            "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in},
            "output_tokens": tokens,
            "total_tokens": audio_in + text_in + tokens,
        }
        return json_reply(payload, input_tokens=audio_in + text_in, output_tokens=tokens)
    payload["usage"] = {"type": "duration", "seconds": seconds}
    return json_reply(payload)


def audio_speech(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/audio/speech``: 32 bytes of silence per input character."""
    _model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise MockHTTPError(400, "input must be a non-empty string", param="input")
    kind = _SPEECH_TYPES.get(str(body.get("response_format") or "mp3"), b"audio/mpeg")
    return Reply(
        bytes(_SPEECH_BYTES_PER_CHARACTER * len(text)),
        content_type=kind,
        headers=[(b"x-mock-characters", str(len(text)).encode())],
    )


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

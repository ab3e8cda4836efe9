"""Reading a client's request: parse and check its body into a
:class:`~spendgate.providers.base.ClientCall` (400 when it is not JSON, 422 for a bad field),
and read the generated text back out of an answer that came without usage (for an estimate).

Pure functions: no I/O, so every rule about what a request may contain is in this one module.
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.gateway.bounds import MAX_TOKEN_ID, check_bounds
from spendgate.http.errors import InvalidField, MalformedRequest
from spendgate.providers.base import ClientCall
from spendgate.providers.multipart import form_fields

__all__ = ["parse_call", "response_text"]

_REQUIRED = {
    "chat": ("messages", list),
    "completions": ("prompt", (str, list)),
    "embeddings": ("input", (str, list)),
    "images": ("prompt", str),
    "speech": ("input", str),
    "messages": ("messages", list),
}
_TOKEN_ID_PROMPTS = {"completions": "prompt", "embeddings": "input"}
"""Fields that may hold a pre-tokenized prompt (token ids), and so must have its shape."""
_NUMBER_FIELDS = ("temperature", "top_p")


def parse_call(endpoint: str, body: bytes, content_type: str) -> ClientCall:
    """Parse and check a request body: 400 when it is not JSON, 422 for a bad field."""
    if endpoint == "transcriptions":
        fields = form_fields(body, content_type)
        if fields is None:
            raise MalformedRequest("expected a multipart/form-data body with the audio file")
        payload: Any = dict(fields)
    else:
        if not body.strip():
            raise MalformedRequest("request body is empty; expected a JSON object")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise MalformedRequest("request body must be a JSON object")
    model = payload.get("model")
    if model is None:
        raise InvalidField("missing required field 'model'", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidField("'model' must be a non-empty string", param="model")
    required = _REQUIRED.get(endpoint)
    if required is not None:
        name, kind = required
        kinds: type | tuple[type, ...] = kind  # type: ignore[assignment]
        if name not in payload:
            raise InvalidField(
                f"missing required field {name!r}", param=name, code="missing_required_parameter"
            )
        if not isinstance(payload[name], kinds):
            raise InvalidField(f"{name!r} has the wrong type", param=name)
    if endpoint in ("chat", "messages"):
        _check_messages(payload["messages"])
    prompt_field = _TOKEN_ID_PROMPTS.get(endpoint)
    if prompt_field is not None:
        _check_prompt(payload[prompt_field], prompt_field)
    tools = payload.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise InvalidField("'tools' must be a list of objects", param="tools")
    check_bounds(payload)
    for name in _NUMBER_FIELDS:
        value = payload.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise InvalidField(f"{name!r} must be a number", param=name)
    if endpoint == "messages" and not isinstance(payload.get("max_tokens"), int):
        raise InvalidField(
            "missing required field 'max_tokens'", param="max_tokens", code="missing_required_parameter"
        )
    stream = payload.get("stream", False)
    if endpoint == "transcriptions":
        stream = False
    elif stream is not None and not isinstance(stream, bool):
        raise InvalidField("'stream' must be a boolean", param="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidField("'stream_options' must be an object", param="stream_options")
    return ClientCall(
        endpoint=endpoint,
        model=model,
        payload=payload,
        raw=body,
        content_type=content_type or "application/json",
        stream=bool(stream),
        include_usage=bool(options and options.get("include_usage")),
    )


def _check_messages(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidField(f"{where} must be an object with a string 'role'", param=where)
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidField(f"{where}.content must be a string or a list", param=f"{where}.content")
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            raise InvalidField(f"{where}.content parts must be objects", param=f"{where}.content")
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            raise InvalidField(f"{where}.tool_calls must be a list of objects", param=f"{where}.tool_calls")


def _check_prompt(prompt: str | list[Any], name: str) -> None:
    """A prompt is a string, a list of strings, a list of token ids, or a list of lists of
    token ids (OpenAI's four forms); token ids are counted one token each."""
    if isinstance(prompt, str) or all(isinstance(item, str) for item in prompt) or _token_ids(prompt):
        return
    if all(isinstance(item, list) and _token_ids(item) for item in prompt):
        return
    raise InvalidField(
        f"{name!r} must be a string, a list of strings, a list of token ids (non-negative integers) "
        "or a list of such lists",
        param=name,
    )


def _token_ids(items: list[Any]) -> bool:
    return all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_TOKEN_ID for i in items)


def response_text(body: bytes) -> str:
    """The generated text of a non-streamed answer (for an estimate when it has no usage)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    parts: list[str] = []
    if isinstance(parsed, dict):
        for choice in parsed.get("choices") or []:
            if isinstance(choice, dict):
                message = choice.get("message") or {}
                parts.append(str(message.get("content") or "") if isinstance(message, dict) else "")
                parts.append(str(choice.get("text") or ""))
        for block in parsed.get("content") or []:
            if isinstance(block, dict):
                parts.append(str(block.get("text") or ""))
        if isinstance(parsed.get("output_text"), str):
            parts.append(parsed["output_text"])
    return "".join(parts)

"""Anthropic's Messages API: native passthrough, and OpenAI chat translated to it.

* :class:`AnthropicExchange`: an Anthropic client's ``/v1/messages`` passed through
  (``x-api-key`` and ``anthropic-version`` set; the client's ``anthropic-beta`` kept).
* :class:`AnthropicChatExchange`: an OpenAI chat request routed to an Anthropic
  deployment. Messages, system prompts, images, tools, tool calls and results,
  ``max_tokens``, ``stop`` and ``user`` are translated; the answer comes back as a chat
  completion (or chat chunks) with OpenAI-convention usage.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from spendgate.core.usage import AnthropicStreamAccumulator, from_anthropic_message
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import reported_service_tier
from spendgate.errors import UsageError
from spendgate.providers.base import (
    Exchange,
    PassthroughStream,
    Pricer,
    StreamTranslator,
    sse_event,
)
from spendgate.providers.body_rules import BodyFieldError
from spendgate.providers.http import UpstreamRequest

__all__ = ["AnthropicChatExchange", "AnthropicExchange", "chat_to_messages", "message_to_chat"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _messages_url(api_base: str) -> str:
    return api_base.rstrip("/").removesuffix("/v1") + "/v1/messages"


class AnthropicExchange(Exchange):
    """An Anthropic Messages request passed through as is (model name replaced)."""

    def _body(self) -> dict[str, Any]:
        return {**self.call.payload, "model": self.target.model}

    def build_request(self) -> UpstreamRequest:
        headers = dict(self.call.forward_headers)
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        headers["content-type"] = "application/json"
        if self.target.api_key:
            headers["x-api-key"] = self.target.api_key
        read, connect = self._timeouts()
        url = _messages_url(self.target.api_base)
        return UpstreamRequest("POST", url, headers, orjson.dumps(self._body()), read, connect)

    def read_response(self, body: bytes, content_type: str) -> tuple[Usage | None, bytes, str]:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, body, content_type
        self.answer = message
        self.service_tier = reported_service_tier(message)
        try:
            return from_anthropic_message(message), body, content_type
        except UsageError:
            return None, body, content_type

    def stream_translator(self, pricer: Pricer) -> StreamTranslator:
        return MessagesStreamPassthrough(pricer)


class AnthropicChatExchange(AnthropicExchange):
    """An OpenAI chat request served by an Anthropic deployment."""

    def _body(self) -> dict[str, Any]:
        return chat_to_messages(self.call.payload, self.target.model)

    def read_response(self, body: bytes, content_type: str) -> tuple[Usage | None, bytes, str]:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, body, content_type
        self.service_tier = reported_service_tier(message)
        try:
            usage: Usage | None = from_anthropic_message(message)
        except UsageError:
            usage = None
        return usage, orjson.dumps(message_to_chat(message, usage)), "application/json"

    def stream_translator(self, pricer: Pricer) -> StreamTranslator:
        return MessagesToChatStream(pricer, include_usage=self.call.include_usage)


# -- requests ----------------------------------------------------------------------------


def chat_to_messages(chat: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic Messages request.

    Raises:
        BodyFieldError: a field of a shape the translation cannot carry over (naming it).
    """
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(_list(chat.get("messages"), "messages")):
        at = f"messages[{i}]"
        message = _object(message, at)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain_text(message.get("content"), f"{at}.content"))
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": _plain_text(message.get("content"), f"{at}.content"),
            }
            _append(messages, "user", [block])
            continue
        blocks = _blocks(message.get("content"), f"{at}.content")
        for j, call in enumerate(_list(message.get("tool_calls"), f"{at}.tool_calls")):
            at_call = f"{at}.tool_calls[{j}]"
            function = _object(_object(call, at_call).get("function"), f"{at_call}.function")
            arguments = _arguments(function.get("arguments"), f"{at_call}.function.arguments")
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id", ""),
                    "name": function.get("name", ""),
                    "input": arguments,
                }
            )
        _append(messages, "assistant" if role == "assistant" else "user", blocks)
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": chat.get("max_completion_tokens") or chat.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    system_text = "\n\n".join(s for s in system if s)
    if system_text:
        body["system"] = system_text
    for key in ("temperature", "top_p", "stream"):
        if chat.get(key) is not None:
            body[key] = chat[key]
    stop = chat.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BodyFieldError("stop", "stop must be a string or a list of strings")
        body["stop_sequences"] = stops
    if isinstance(chat.get("user"), str):
        body["metadata"] = {"user_id": chat["user"]}
    tools = []
    for i, tool in enumerate(_list(chat.get("tools"), "tools")):
        if _object(tool, f"tools[{i}]").get("type", "function") == "function":
            tools.append(_object(tool.get("function") or {}, f"tools[{i}].function"))
    if tools:
        body["tools"] = [
            {
                "name": f.get("name", ""),
                "description": f.get("description", ""),
                "input_schema": f.get("parameters") or {"type": "object", "properties": {}},
            }
            for f in tools
        ]
    choice = chat.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("auto", "required", "none"):
        choice = choice["type"]  # the object form of the three modes
    if choice == "auto":
        body["tool_choice"] = {"type": "auto"}
    elif choice == "required":
        body["tool_choice"] = {"type": "any"}
    elif choice == "none":
        body["tool_choice"] = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        body["tool_choice"] = {"type": "tool", "name": choice["function"].get("name", "")}
    elif choice is not None and not isinstance(choice, str | dict):  # (other modes: Anthropic's default)
        raise BodyFieldError(
            "tool_choice",
            "tool_choice must be 'auto', 'required', 'none' or {'type': 'function', 'function': {...}}",
        )
    return body


def _arguments(value: object, field: str) -> Any:
    """A tool call's ``arguments`` as Anthropic's ``input``: OpenAI's JSON text parsed (text
    that is not JSON: ``{}``, as before), or an object as given."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise BodyFieldError(field, f"{field} must be a JSON string")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}


def _list(value: object, field: str) -> list[Any]:
    """``value`` as a list (None: empty); anything else cannot be translated."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BodyFieldError(field, f"{field} must be a list")
    return value


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BodyFieldError(field, f"{field} must be an object")
    return value


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Anthropic wants user and assistant turns to alternate: merge neighbours.
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _plain_text(content: object, field: str) -> str:
    """The text of a system or tool message (its text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block["text"] for block in _blocks(content, field) if block["type"] == "text")
    return ""


def _blocks(content: object, field: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(_list(content, field)):
        at = f"{field}[{j}]"
        kind = _object(part, at).get("type")
        if kind == "text":
            text = part.get("text", "")
            if not isinstance(text, str):
                raise BodyFieldError(f"{at}.text", f"{at}.text must be a string")
            blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else _object(image, f"{at}.image_url").get("url")
            if not isinstance(url, str) or not url:
                raise BodyFieldError(f"{at}.image_url", f"{at}.image_url must be an object with a url")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append(
                    {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


# -- responses ---------------------------------------------------------------------------


def _chat_usage(usage: Usage) -> dict[str, Any]:
    """A message's usage in a chat completion: OpenAI's fields (``prompt_tokens`` counts
    every input token, cached and written ones included), the cache writes as spendgate's
    extractor and LiteLLM's readers find them (so the usage prices again to the call's
    cost), and LiteLLM's top-level names for an Anthropic model's cache use."""
    details: dict[str, Any] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
        details["cache_creation_token_details"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens - usage.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        }
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": details,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def message_to_chat(message: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
    """An Anthropic message as an OpenAI chat completion."""
    if message.get("type") == "error":
        return message
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text or not tool_calls else None,
    }
    if tool_calls:
        reply["tool_calls"] = tool_calls
    out: dict[str, Any] = {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": _FINISH.get(str(message.get("stop_reason")), "stop"),
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        out["usage"] = _chat_usage(usage)
    return out


class MessagesStreamPassthrough(PassthroughStream):
    """Anthropic stream events passed through unchanged; usage accumulated."""

    def __init__(self, pricer: Pricer) -> None:
        super().__init__(pricer, AnthropicStreamAccumulator())

    def _finishes(self, parsed: Any) -> bool:
        return isinstance(parsed, dict) and parsed.get("type") == "message_stop"

    def _final_usage(self, parsed: dict[str, Any]) -> dict[str, Any] | None:
        usage = parsed.get("usage") if parsed.get("type") == "message_delta" else None
        return usage if isinstance(usage, dict) else None

    def error_event(self, message: str) -> bytes:
        return sse_event({"type": "error", "error": {"type": "api_error", "message": message}}, event="error")


class MessagesToChatStream(MessagesStreamPassthrough):
    """Anthropic stream events rewritten as OpenAI chat chunks."""

    def __init__(self, pricer: Pricer, *, include_usage: bool) -> None:
        super().__init__(pricer)
        self.include_usage = include_usage
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._tools: dict[int, int] = {}  # content block index → tool call index

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._translate(event) for event in self._split.feed(data))

    def close(self) -> bytes:
        return b"".join(self._translate(event) for event in self._split.close())

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse_event(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
        )

    def _translate(self, event: bytes) -> bytes:
        parsed = self._event(event)
        if parsed is None:
            return b""
        kind = parsed.get("type")
        if kind == "message_start":
            message = parsed.get("message") or {}
            self._id, self._model = message.get("id", ""), message.get("model", "")
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = parsed.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools[parsed.get("index", 0)] = len(self._tools)
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return self._chunk({"tool_calls": [call]})
            return b""
        if kind == "content_block_delta":
            delta = parsed.get("delta") or {}
            if delta.get("type") == "text_delta":
                return self._chunk({"content": delta.get("text", "")})
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(parsed.get("index", 0), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return self._chunk({"tool_calls": [call]})
            return b""
        if kind == "message_delta":
            reason = (parsed.get("delta") or {}).get("stop_reason")
            return self._chunk({}, _FINISH.get(str(reason), "stop"))
        if kind == "message_stop":
            out = b""
            usage = self.usage()
            if usage is not None:
                breakdown = self.price(usage)
                if self.include_usage:
                    body = _chat_usage(usage)
                    if breakdown.priced:
                        body["cost"] = float(breakdown.total)
                    out = sse_event(
                        {
                            "id": self._id,
                            "object": "chat.completion.chunk",
                            "created": self._created,
                            "model": self._model,
                            "choices": [],
                            "usage": body,
                        }
                    )
            return out + b"data: [DONE]\n\n"
        if kind == "error":
            error = parsed.get("error") or {}
            return self.error_event(str(error.get("message", "upstream error")))
        return b""

    def error_event(self, message: str) -> bytes:
        return sse_event(
            {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}
        )

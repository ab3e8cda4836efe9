"""Anthropic-shaped responses: ``POST /v1/messages`` (streaming or not) and token counting.

Usage follows Anthropic's semantics: ``input_tokens`` excludes the cache reads
(``cache_read_input_tokens``) and the cache writes (``cache_creation_input_tokens``); their
sum is the prompt's token count. ``output_tokens`` includes thinking tokens (reported in
``output_tokens_details.thinking_tokens`` when ``x-mock-reasoning-tokens`` is set).
"""

from __future__ import annotations

from typing import Any

from spendgate.providers.mock._http import MockHTTPError, Reply, anthropic_sse, json_reply, new_id
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.generation import completion_tokens
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.tokens import chat_prompt_tokens, generate_text, text_pieces

__all__ = ["count_message_tokens", "message", "message_payload"]


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockHTTPError(400, "messages: must be a non-empty list", param="messages")
    return chat_prompt_tokens(messages, body.get("system"))


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MockHTTPError(400, "model: Field required", param="model")
    return model


class _Plan:
    __slots__ = ("cache_read", "input", "output", "prompt", "thinking", "visible", "write_1h", "write_5m")

    def __init__(self, body: dict[str, Any], controls: Controls, options: MockOptions) -> None:
        self.prompt = _prompt_tokens(body)
        self.cache_read = min(controls.cached_tokens, self.prompt)
        self.write_5m = min(controls.cache_write_tokens, self.prompt - self.cache_read)
        self.write_1h = min(controls.cache_write_1h_tokens, self.prompt - self.cache_read - self.write_5m)
        self.input = self.prompt - self.cache_read - self.write_5m - self.write_1h
        self.output = completion_tokens(body, controls, options, "max_tokens")
        self.thinking = min(controls.reasoning_tokens, self.output)
        self.visible = self.output - self.thinking

    def usage(self, output_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.write_5m + self.write_1h,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if self.thinking:
            usage["output_tokens_details"] = {"thinking_tokens": self.thinking}
        return usage


def message_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A non-streaming ``message`` object."""
    model = _model(body)
    plan = _Plan(body, controls, options)
    return _message(model, plan, generate_text(plan.visible), plan.output)


def _message(model: str, plan: _Plan, text: str | None, output_tokens: int) -> dict[str, Any]:
    done = text is not None
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if done else [],
        "stop_reason": "end_turn" if done else None,
        "stop_sequence": None,
        "usage": plan.usage(output_tokens),
    }


def message(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/messages``.

    A stream sends ``message_start`` (input and cache usage, ``output_tokens`` 1 as
    Anthropic does), ``content_block_start``, ``ping``, one ``content_block_delta`` per
    generated piece, ``content_block_stop``, ``message_delta`` (cumulative usage: the final
    ``output_tokens``, and the input fields again) and ``message_stop``.
    """
    model = _model(body)
    plan = _Plan(body, controls, options)
    if not body.get("stream"):
        payload = _message(model, plan, generate_text(plan.visible), plan.output)
        return json_reply(payload, input_tokens=plan.prompt, output_tokens=plan.output)
    start = _message(model, plan, None, min(1, plan.output))
    final_usage = plan.usage(plan.output)
    del final_usage["cache_creation"], final_usage["service_tier"]
    events = [
        anthropic_sse({"type": "message_start", "message": start}),
        anthropic_sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        ),
        anthropic_sse({"type": "ping"}),
    ]
    events.extend(
        anthropic_sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        )
        for piece in text_pieces(plan.visible)
    )
    events.append(anthropic_sse({"type": "content_block_stop", "index": 0}))
    events.append(
        anthropic_sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": final_usage,
            }
        )
    )
    events.append(anthropic_sse({"type": "message_stop"}))
    return Reply(
        content_type=b"text/event-stream; charset=utf-8",
        events=events,
        input_tokens=plan.prompt,
        output_tokens=plan.output,
    )


def count_message_tokens(body: dict[str, Any]) -> Reply:
    """``POST /v1/messages/count_tokens``."""
    _model(body)
    return json_reply({"input_tokens": _prompt_tokens(body)})

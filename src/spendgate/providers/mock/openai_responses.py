"""The mock's OpenAI Responses API (``POST /v1/responses``): a ``response`` object, or its
stream of named events ending in ``response.completed``. No I/O: the batch runner reuses it.
"""

from __future__ import annotations

from typing import Any

from spendgate.providers.mock._http import MockHTTPError, Reply, anthropic_sse, json_reply, new_id, now
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.generation import Plan, completion_tokens, read_model, read_service_tier
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.tokens import chat_prompt_tokens, generate_text, text_pieces

__all__ = ["response", "response_payload"]


def _responses_plan(body: dict[str, Any], controls: Controls, options: MockOptions) -> Plan:
    items = body.get("input")
    if not isinstance(items, str | list):
        raise MockHTTPError(400, "input must be a string or an array", param="input")
    prompt = chat_prompt_tokens(items, body.get("instructions"))
    per_choice = completion_tokens(body, controls, options, "max_output_tokens")
    return Plan(prompt, per_choice, 1, controls)


def _responses_usage(plan: Plan) -> dict[str, Any]:
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
        "service_tier": read_service_tier(body),
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
    model = read_model(body)
    plan = _responses_plan(body, controls, options)
    return _response_done(body, model, plan, controls, _response_object(body, model, "completed"))


def _response_done(
    body: dict[str, Any], model: str, plan: Plan, controls: Controls, obj: dict[str, Any]
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
    model = read_model(body)
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

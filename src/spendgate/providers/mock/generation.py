"""The request arithmetic shared by the mock's OpenAI-shaped text routes (chat, completions,
responses) and reused by the Anthropic ones: reading the model and the counts a body asks
for, and a :class:`Plan` of the tokens one request generates and bills.
"""

from __future__ import annotations

from typing import Any

from spendgate.providers.mock._http import MockHTTPError, Reply, json_reply
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.options import MockOptions

__all__ = [
    "FINGERPRINT",
    "Plan",
    "chat_usage",
    "completion_tokens",
    "read_model",
    "read_positive_int",
    "read_service_tier",
    "wants_usage",
]

FINGERPRINT = "fp_spendgate_mock"
_SERVICE_TIERS = frozenset(("default", "flex", "priority", "scale"))


def read_model(body: dict[str, Any]) -> str:
    """The body's ``model`` (a 400 when it is missing or empty)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MockHTTPError(400, "you must provide a model parameter", param="model")
    return model


def read_positive_int(body: dict[str, Any], name: str, default: int, maximum: int = 128) -> int:
    """The body's integer ``name`` in 1..``maximum`` (``default`` when absent; else a 400)."""
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


def read_service_tier(body: dict[str, Any]) -> str:
    """The service tier the answer names: the one asked for when it exists, else ``default``."""
    tier = body.get("service_tier")
    return tier if isinstance(tier, str) and tier in _SERVICE_TIERS else "default"


def chat_usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
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


class Plan:
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
        return chat_usage(self.prompt, self.completion, self.cached, self.reasoning)

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


def wants_usage(body: dict[str, Any], controls: Controls) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage")) and not controls.no_usage

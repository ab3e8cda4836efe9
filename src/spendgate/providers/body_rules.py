"""What a request body of each API must look like, checked once for live calls and batch lines.

The gateway checks a live call's body before it reserves anything (a 422 naming the field);
a batch checks every line of its input before the provider sees it (a 400 naming the line
and the field). Both apply these rules, so a body the gateway refuses live is refused in a
batch too, with the same words. :func:`check_body` raises :class:`BodyFieldError`, which
says the field without HTTP; each caller turns it into its own error.

The integer bounds exist because the worst case reserved is the product of an output cap and
a choice count at the output rate, and a counter holds 64 bits (a ``max_tokens`` of 2^63
overflowed Redis); token ids are integers from 0 to 2^31-1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "INTEGER_BOUNDS",
    "MAX_CHOICES",
    "MAX_OUTPUT_TOKENS",
    "MAX_TOKEN_ID",
    "PROMPT_FIELDS",
    "BodyFieldError",
    "check_body",
]

MAX_OUTPUT_TOKENS = 2**31 - 1
MAX_TOKEN_ID = 2**31 - 1
"""The largest token id a pre-tokenized prompt may hold."""
MAX_CHOICES = 128

INTEGER_BOUNDS: Mapping[str, tuple[int, int]] = {
    "max_tokens": (0, MAX_OUTPUT_TOKENS),
    "max_completion_tokens": (0, MAX_OUTPUT_TOKENS),
    "max_output_tokens": (0, MAX_OUTPUT_TOKENS),
    "n": (1, MAX_CHOICES),
    "best_of": (1, MAX_CHOICES),
}
"""Integer fields: (least, most) allowed, both included."""

PROMPT_FIELDS: Mapping[str, tuple[str, type | tuple[type, ...]]] = {
    "chat": ("messages", list),
    "completions": ("prompt", (str, list)),
    "embeddings": ("input", (str, list)),
    "images": ("prompt", str),
    "speech": ("input", str),
    "messages": ("messages", list),
}
"""The field each kind of body must carry (by the gateway's endpoint names), and its type."""

_TOKEN_ID_PROMPTS = frozenset({"completions", "embeddings"})
"""Kinds whose prompt may be pre-tokenized (token ids), and so must have one of its shapes."""


class BodyFieldError(ValueError):
    """A body field that breaks the rules: ``field`` is its dotted path (``messages[2].content``)."""

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code
        """``missing_required_parameter`` for a field that is absent, else None."""


def check_body(kind: str, body: Mapping[str, Any]) -> None:
    """Check ``body`` of a ``kind`` request (``chat``, ``completions``, ``embeddings``,
    ``responses``, ``images``, ``speech``, ``messages`` …): the prompt field and its type,
    message shapes, pre-tokenized prompts, ``tools``, the integer bounds, and Anthropic's
    required ``max_tokens``.

    Raises:
        BodyFieldError: the first field that breaks a rule.
    """
    required = PROMPT_FIELDS.get(kind)
    if required is not None:
        name, kinds = required
        if name not in body:
            raise BodyFieldError(name, f"missing required field {name!r}", code="missing_required_parameter")
        if not isinstance(body[name], kinds):
            raise BodyFieldError(name, f"{name!r} has the wrong type")
    if kind in ("chat", "messages"):
        _check_messages(body["messages"])
    if kind in _TOKEN_ID_PROMPTS:
        name = PROMPT_FIELDS[kind][0]
        if not _prompt_shape(body[name]):
            raise BodyFieldError(
                name,
                f"{name!r} must be a string, a list of strings, a list of token ids (non-negative "
                "integers) or a list of such lists",
            )
    if kind == "responses" and body.get("input") is not None and not isinstance(body["input"], str | list):
        raise BodyFieldError("input", "'input' must be a string or a list")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise BodyFieldError("tools", "'tools' must be a list of objects")
    for name, (least, most) in INTEGER_BOUNDS.items():
        value = body.get(name)
        if value is not None and (not _is_int(value) or not least <= value <= most):
            raise BodyFieldError(name, f"{name!r} must be an integer from {least} to {most}")
    if kind == "messages" and not _is_int(body.get("max_tokens")):
        raise BodyFieldError(
            "max_tokens", "missing required field 'max_tokens'", code="missing_required_parameter"
        )


def _check_messages(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BodyFieldError(where, f"{where} must be an object with a string 'role'")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BodyFieldError(f"{where}.content", f"{where}.content must be a string or a list")
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            raise BodyFieldError(f"{where}.content", f"{where}.content parts must be objects")
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            raise BodyFieldError(f"{where}.tool_calls", f"{where}.tool_calls must be a list of objects")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_ids(items: list[Any]) -> bool:
    return all(_is_int(i) and 0 <= i <= MAX_TOKEN_ID for i in items)


def _prompt_shape(prompt: str | list[Any]) -> bool:
    """OpenAI's four prompt forms: a string, strings, token ids, lists of token ids."""
    if isinstance(prompt, str) or all(isinstance(item, str) for item in prompt) or _token_ids(prompt):
        return True
    return all(isinstance(item, list) and _token_ids(item) for item in prompt)

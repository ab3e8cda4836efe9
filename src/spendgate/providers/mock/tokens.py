"""Deterministic token counting and text generation for the mock provider.

Tests compute expected usage with the same formula, documented in ``docs/mock-provider.md``:

* ``tokens(s) = ceil(len(s) / 4)``, where ``len`` counts Unicode code points.
* A chat message counts ``MESSAGE_OVERHEAD`` (4) plus ``tokens(text)``. ``text`` is the
  message's string content, or the concatenation of the ``text`` of its content parts
  (a part with no ``text`` but a ``content`` is read recursively, e.g. an Anthropic
  ``tool_result``); a Responses API item with no content uses its ``output`` string.
  Images, audio, tool definitions and tool-call arguments count 0.
* A chat prompt (OpenAI chat, Anthropic messages, Responses API) is the sum over its
  messages. Anthropic's ``system`` and the Responses ``instructions`` count as one more
  message; a Responses ``input`` string is one message.
* A completions prompt, embeddings input or image prompt counts ``tokens(s)`` per string,
  without overhead; a pre-tokenized input (a list of integers) counts its length.
* Completion tokens per choice: the ``x-mock-completion-tokens`` header, else
  ``max_completion_tokens``, ``max_tokens`` or ``max_output_tokens`` from the body, else
  the server's default (16).
* Completion tokens of a request: per choice × ``n``; a legacy completion with ``best_of``
  generates (and bills, as OpenAI does) ``best_of`` choices and returns ``n`` of them.
* The generated text for ``n`` tokens is ``n`` three-letter words, each followed by a space
  (the last by a period): exactly ``4 n`` characters, so ``tokens(text) == n``. A stream
  sends one such four-character piece per delta.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD",
    "chat_prompt_tokens",
    "count_tokens",
    "generate_text",
    "input_tokens",
    "message_text",
    "text_pieces",
]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4

_WORDS = (
    "the", "fox", "ran", "far", "and", "saw", "big", "red", "sun", "set", "low", "now",
    "cat", "sat", "mat", "dog", "dug", "log", "bee", "hum", "owl", "hid", "elk", "fed",
)  # fmt: skip


def count_tokens(text: str) -> int:
    """Tokens in ``text``: ``ceil(len(text) / 4)``."""
    return -(-len(text) // CHARS_PER_TOKEN)


def message_text(content: Any) -> str:
    """The text of a message content: a string, or the concatenation of its text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    return ""


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    text = part.get("text")
    if isinstance(text, str):
        return text
    if "content" in part:
        return message_text(part["content"])
    return ""


def _message_tokens(message: Any) -> int:
    if isinstance(message, str):
        return MESSAGE_OVERHEAD + count_tokens(message)
    if not isinstance(message, dict):
        return 0
    content = message.get("content")
    if content is None and isinstance(message.get("output"), str):
        content = message["output"]
    return MESSAGE_OVERHEAD + count_tokens(message_text(content))


def chat_prompt_tokens(messages: Any, system: Any = None) -> int:
    """Prompt tokens of a chat-shaped request (OpenAI chat, Anthropic, Responses API).

    Args:
        messages: the ``messages`` list, or a Responses ``input`` (a string or a list of items).
        system: Anthropic's ``system`` or the Responses ``instructions``; one more message if set.
    """
    total = 0
    if system:
        total += MESSAGE_OVERHEAD + count_tokens(message_text(system))
    if isinstance(messages, str):
        return total + MESSAGE_OVERHEAD + count_tokens(messages)
    if isinstance(messages, list):
        total += sum(_message_tokens(message) for message in messages)
    return total


def input_tokens(value: Any) -> int:
    """Tokens of a completions prompt, embeddings input or image prompt (no overhead)."""
    if isinstance(value, str):
        return count_tokens(value)
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return len(value)
        return sum(input_tokens(item) for item in value)
    return 0


@lru_cache(maxsize=1024)
def text_pieces(n: int) -> tuple[str, ...]:
    """The ``n`` four-character pieces of the generated text (one per stream delta)."""
    words = len(_WORDS)
    return tuple(_WORDS[i % words] + ("." if i == n - 1 else " ") for i in range(n))


@lru_cache(maxsize=1024)
def generate_text(n: int) -> str:
    """Generated text of exactly ``n`` tokens under :func:`count_tokens`."""
    return "".join(text_pieces(n))

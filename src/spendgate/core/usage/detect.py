"""Pick the right extractor for a response whose kind the caller did not say."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.core.usage.model import Usage
from spendgate.errors import UsageError

__all__ = ["usage_from_response"]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_from_response(response: Any) -> Usage:
    """The :class:`Usage` of an OpenAI or Anthropic response (SDK object or dict).

    Accepts whole responses (chat completion, completion, embeddings, Responses API,
    image generation, Anthropic message) and bare usage objects.
    """
    from spendgate.core.usage import anthropic, openai

    if isinstance(response, Usage):
        return response
    kind = _get(response, "object")
    rtype = _get(response, "type")
    if rtype == "message" or (kind is None and _get(response, "stop_reason") is not None):
        return anthropic.from_anthropic_message(response)
    if kind == "response":
        return openai.from_openai_responses(response)
    if kind in ("chat.completion", "chat.completion.chunk"):
        return openai.from_openai_chat(response)
    if kind == "text_completion":
        return openai.from_openai_completion(response)
    data = _get(response, "data")
    usage = _get(response, "usage")
    if kind == "list" and isinstance(data, list | tuple):
        return openai.from_openai_embedding(response)
    if data is not None and _get(response, "created") is not None and kind is None:
        return openai.from_openai_image(response)
    if usage is None:
        usage = response  # a bare usage object
    if _get(usage, "prompt_tokens") is not None:
        return openai.from_openai_chat(usage)
    if _get(usage, "input_tokens") is not None:
        if _get(usage, "total_tokens") is not None or _get(usage, "input_tokens_details") is not None:
            return openai.from_openai_responses(usage)
        return anthropic.from_anthropic_message(usage)
    raise UsageError("cannot tell what kind of response this is: no usage found")

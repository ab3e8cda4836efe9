"""The mock provider's token formula, restated independently of its code (docs/mock-provider.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

OVERHEAD = 4


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = ""
    for part in content or []:
        if "text" in part:
            out += part["text"]
        elif "content" in part:
            out += _text(part["content"])
    return out


def chat_prompt(messages: Sequence[Mapping[str, Any]], system: Any = None) -> int:
    total = sum(OVERHEAD + tokens(_text(m.get("content"))) for m in messages)
    if system:
        total += OVERHEAD + tokens(_text(system))
    return total

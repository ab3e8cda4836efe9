"""The bounds of what a request body may carry, so that everything it names fits where it
is counted and stored.

:func:`check_bounds` runs when the body is parsed, before anything is reserved, sent or
recorded; a value out of bounds is a 422 naming the field (``param``), never a 500 later.
The integer bounds and token ids are the body rules shared with batches
(:mod:`spendgate.providers.body_rules`, checked by :func:`~spendgate.gateway.parsing.parse_call`);
the rest are the gateway's own:

* **Output caps and choice counts** (``max_tokens``, ``max_completion_tokens``,
  ``max_output_tokens`` ≤ 2^31-1; ``n``, ``best_of`` in 1..128): the worst case reserved
  is their product at the output rate, and a counter holds 64 bits (a ``max_tokens`` of
  2^63 overflowed Redis).
* **No NUL character** (``\\u0000``) in ``model``, ``user`` or anywhere in ``metadata``
  (keys and values): those strings reach the ledger and the entity tables, and
  PostgreSQL text cannot hold NUL.
* **Token ids** in a pre-tokenized prompt: integers from 0 to 2^31-1 (checked with the
  prompt's shape by the pipeline).
* **Customer ids** (``user``, Anthropic's ``metadata.user_id``) of at most 255
  characters: the width of the ledger's and the customers table's columns.
* **Tags** (``metadata.tags``): a list of at most 32 strings of at most 128 characters.
  Each tag is a rollup row per scope and period, and is looked up for a budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.http.credentials import check_id
from spendgate.http.errors import InvalidField

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "check_bounds",
]

MAX_TAGS = 32
MAX_TAG_CHARS = 128

_NUL = "\x00"


def check_bounds(payload: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidField` (422) for the first field of ``payload`` out of bounds."""
    for name in ("model", "user"):
        value = payload.get(name)
        if isinstance(value, str) and _NUL in value:
            raise InvalidField(_nul_message(name), param=name)
    check_id(payload.get("user"), "user")
    metadata = payload.get("metadata")
    if metadata is not None:
        where = _nul_path(metadata, "metadata")
        if where is not None:
            raise InvalidField(_nul_message(where), param=where)
        if isinstance(metadata, dict):
            check_id(metadata.get("user_id"), "metadata.user_id")
            _check_tags(metadata.get("tags"))


def _check_tags(tags: object) -> None:
    if tags is None:
        return
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidField("'metadata.tags' must be a list of strings", param="metadata.tags")
    if len(tags) > MAX_TAGS:
        raise InvalidField(
            f"'metadata.tags' has {len(tags)} tags; at most {MAX_TAGS} are allowed", param="metadata.tags"
        )
    for i, tag in enumerate(tags):
        if len(tag) > MAX_TAG_CHARS:
            raise InvalidField(
                f"'metadata.tags[{i}]' must be at most {MAX_TAG_CHARS} characters",
                param=f"metadata.tags[{i}]",
            )


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first string (or object key) under ``value`` holding a NUL, or None.
    Walked with a stack: a body may nest as deep as the JSON parser allows."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _NUL in item:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if _NUL in key:
                    return where
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def _nul_message(where: str) -> str:
    return f"{where!r} must not contain a NUL character (\\u0000)"

"""Reading provider payloads that may be dicts or SDK objects.

The official SDKs return pydantic models (attribute access); raw HTTP bodies and batch
output lines are dicts; tests use ``SimpleNamespace``. :func:`get` reads a field from any
of them, and the coercions below turn what was read into validated counts, naming the
field's path when the payload is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from spendgate.core.usage.model import MAX_COUNT, MAX_SECONDS, Usage, UsageError

__all__ = [
    "check_nesting",
    "count",
    "count_of",
    "dig",
    "first",
    "get",
    "items",
    "optional_count",
    "plain_count",
    "seconds",
    "text",
]

_SCALARS = (str, bytes, bytearray, int, float, Decimal)


def get(obj: object, name: str) -> object:
    """Field ``name`` of a mapping or an object, or None when absent (or obj is None)."""
    if obj.__class__ is dict:  # the usual case (a parsed body): skip the ABC checks below
        return obj.get(name)
    if obj is None or isinstance(obj, _SCALARS):
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    value = getattr(obj, name, None)
    # A method of the object (``dict``, ``copy`` …) is not a field of the payload.
    return None if callable(value) else value


def dig(obj: object, *names: str) -> object:
    """``get`` along a path: ``dig(r, "usage", "prompt_tokens_details")``."""
    for name in names:
        obj = get(obj, name)
        if obj is None:
            return None
    return obj


def first(obj: object, *names: str) -> tuple[str, object]:
    """The first of ``names`` whose value is not None, and that value (else the first name, None)."""
    for name in names:
        value = get(obj, name)
        if value is not None:
            return name, value
    return names[0], None


def optional_count(value: object, path: str) -> int | None:
    """A non-negative integer count, or None when absent.

    Accepts ints and integral floats (``12.0``: some providers send those) up to
    :data:`MAX_COUNT`; refuses bools, strings, negative, non-integral and larger numbers
    with a :class:`UsageError` naming ``path``.
    """
    if value.__class__ is int:  # the usual case
        if 0 <= value <= MAX_COUNT:
            return value
        raise UsageError(_not_a_count(path, value))
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{path} must be a non-negative integer, got {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float | Decimal):
        finite = math.isfinite(value) if isinstance(value, float) else value.is_finite()
        # Range first: int() of a huge Decimal would build a huge integer.
        if not finite or not 0 <= value <= MAX_COUNT or value != int(value):
            raise UsageError(_not_a_count(path, value))
        result = int(value)
    else:
        raise UsageError(f"{path} must be a non-negative integer, got {value!r}")
    if not 0 <= result <= MAX_COUNT:
        raise UsageError(_not_a_count(path, value))
    return result


def _not_a_count(path: str, value: object) -> str:
    return f"{path} must be a non-negative integer up to {MAX_COUNT}, got {value!r}"


def plain_count(value: object) -> int:
    """A count that is absent (0) or a non-negative int, as parsed from a body; -1 for
    anything else (the extractors' shortcuts then leave it to the general path)."""
    if value is None:
        return 0
    if value.__class__ is int and 0 <= value <= MAX_COUNT:
        return value
    return -1


def count(value: object, path: str) -> int:
    """Like :func:`optional_count`, with None read as 0."""
    result = optional_count(value, path)
    return 0 if result is None else result


def count_of(obj: object, name: str, parent: str) -> int:
    """The count ``obj.name`` (0 when absent), errors naming ``parent.name``."""
    value = get(obj, name)
    if value is None:
        return 0
    if value.__class__ is int and 0 <= value <= MAX_COUNT:
        return value
    return count(value, f"{parent}.{name}")


def seconds(value: object, path: str) -> Decimal | None:
    """A non-negative, finite number of seconds as an exact Decimal, or None when absent.

    A float goes through its shortest ``repr`` (``8.47`` means exactly ``8.47``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise UsageError(f"{path} must be a number of seconds, got {value!r}")
    result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not result.is_finite() or not 0 <= result <= MAX_SECONDS:
        raise UsageError(f"{path} must be a finite number of seconds from 0 to {MAX_SECONDS}, got {value!r}")
    return result


def text(value: object, path: str) -> str | None:
    """A string field, or None when absent."""
    if value is None or isinstance(value, str):
        return value
    raise UsageError(f"{path} must be a string, got {value!r}")


def items(value: object, path: str) -> Sequence[object]:
    """A list field (``choices``, ``output``, ``data``), or () when absent."""
    if value is None:
        return ()
    if value.__class__ is list or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)
    ):
        return value
    raise UsageError(f"{path} must be a list, got {type(value).__name__}")


def check_nesting(usage: Usage, source: str) -> Usage:
    """Refuse a usage whose subsets exceed their sets (a payload we would misprice)."""
    u = usage
    if (  # every call: the plain comparisons first, the message only for a bad payload
        u.cache_read_tokens + u.cache_write_tokens <= u.input_tokens
        and u.cache_write_1h_tokens <= u.cache_write_tokens
        and u.input_audio_tokens <= u.input_tokens
        and u.input_image_tokens <= u.input_tokens
        and u.input_video_tokens <= u.input_tokens
        and u.cache_read_audio_tokens <= u.cache_read_tokens
        and u.cache_read_audio_tokens <= u.input_audio_tokens
        and u.reasoning_tokens <= u.output_tokens
        and u.output_audio_tokens <= u.output_tokens
        and u.output_image_tokens <= u.output_tokens
        and u.output_video_tokens <= u.output_tokens
    ):
        return usage
    pairs = (
        ("cache_read_tokens + cache_write_tokens", u.cache_read_tokens + u.cache_write_tokens,
         "input_tokens", u.input_tokens),
        ("cache_write_1h_tokens", u.cache_write_1h_tokens, "cache_write_tokens", u.cache_write_tokens),
        ("input_audio_tokens", u.input_audio_tokens, "input_tokens", u.input_tokens),
        ("input_image_tokens", u.input_image_tokens, "input_tokens", u.input_tokens),
        ("input_video_tokens", u.input_video_tokens, "input_tokens", u.input_tokens),
        ("cache_read_audio_tokens", u.cache_read_audio_tokens, "cache_read_tokens", u.cache_read_tokens),
        ("cache_read_audio_tokens", u.cache_read_audio_tokens, "input_audio_tokens", u.input_audio_tokens),
        ("reasoning_tokens", u.reasoning_tokens, "output_tokens", u.output_tokens),
        ("output_audio_tokens", u.output_audio_tokens, "output_tokens", u.output_tokens),
        ("output_image_tokens", u.output_image_tokens, "output_tokens", u.output_tokens),
        ("output_video_tokens", u.output_video_tokens, "output_tokens", u.output_tokens),
    )  # fmt: skip
    for part_name, part, whole_name, whole in pairs:
        if part > whole:
            raise UsageError(f"{source}: {part_name} ({part}) exceeds {whole_name} ({whole})")
    return usage

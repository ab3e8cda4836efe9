"""An answer's JSON parsed once: the SDK reads the metered path's parse.

Both official SDKs read a JSON answer with ``response.json()``, which httpx answers with
the standard library's ``json.loads`` of the content. The metered path has parsed the same
bytes already (with orjson, to read the usage), so the response's first ``json()`` can
return that value instead of parsing again: one parse per call instead of two (the
standard library's parse of a short chat answer is ~4 µs warm, ~10 µs inside a call).

Only where both parsers give the same value. orjson refuses what the standard library
accepts beyond RFC 8259 (``NaN``, a lone surrogate, a BOM, ``1e999``): then the metered
path has no parse to hand on. The one value they read differently is an integer outside
64 bits, which orjson reads as a float: an answer with a run of 19 digits anywhere (the
shortest such integer, a false alarm in an id or a long fraction costs only the second
parse) is left to the standard library. (One more difference, in the caller's favour: an
answer nested 1,000 to 1,024 levels deep, which orjson reads and the standard library
refuses with a ``RecursionError``, now reads.) The value is handed on once and to nobody else
(a callback that was given the parse might have changed it): a second ``json()``, or one
with arguments, parses the content as httpx does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = ["hand_on"]

_DIGITS = bytes(48 if 48 <= i <= 57 else i for i in range(256))
"""Every ASCII digit read as ``0``."""
_LONG_NUMBER = b"0" * 19
"""The fewest digits of an integer orjson reads as a float (beyond -2**63 … 2**64 - 1)."""


class _ParsedOnce:
    """``response.json`` for one answer: the kept parse the first time (popped, so two
    threads cannot both get it), then the standard library's, as httpx's method reads."""

    __slots__ = ("_content", "_kept")

    def __init__(self, parsed: Any, content: bytes) -> None:
        self._kept = [parsed]
        self._content = content

    def __call__(self, **kwargs: Any) -> Any:
        if not kwargs:
            try:
                return self._kept.pop()
            except IndexError:
                pass
        return json.loads(self._content, **kwargs)


def hand_on(response: httpx.Response, parsed: Any) -> None:
    """Let ``response.json()`` return ``parsed`` (orjson's parse of its whole content,
    seen by nobody else) once, when the standard library would read the same value."""
    content = response.content
    if _LONG_NUMBER in content.translate(_DIGITS):
        return
    vars(response)["json"] = _ParsedOnce(parsed, content)

"""httpx and httpx2: the official SDKs' HTTP layer, whichever of the two they use.

openai 1.x and anthropic 0.x are built on ``httpx``; newer releases on ``httpx2`` (its
successor, same API, distinct classes: an ``httpx2.Client`` asserts that its transport
answers with ``httpx2`` responses and byte streams, and anthropic refuses an ``httpx``
client). The metered transports and streams derive from the base classes of both
(:func:`joined`), and build each answer with the module of the request they were given
(:func:`module_of`), so one transport serves either SDK generation. ``httpx2`` is optional.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

import httpx

__all__ = ["MODULES", "RESPONSE_TYPES", "add_header", "header_items", "joined", "module_of", "module_of_type"]

try:
    import httpx2
except ImportError:  # pragma: no cover - an SDK generation built on httpx alone
    httpx2 = None  # type: ignore[assignment]

MODULES: tuple[ModuleType, ...] = (httpx,) if httpx2 is None else (httpx, httpx2)
RESPONSE_TYPES: tuple[type[Any], ...] = tuple(m.Response for m in MODULES)
_HTTPX2_TYPES: tuple[type[Any], ...] = (
    ()
    if httpx2 is None
    else (
        httpx2.Request,
        httpx2.Response,
        httpx2.Client,
        httpx2.AsyncClient,
        httpx2.BaseTransport,
        httpx2.AsyncBaseTransport,
    )
)


def module_of(obj: object) -> ModuleType:
    """``httpx2`` for one of its requests, responses, clients or transports, else ``httpx``."""
    return httpx2 if _HTTPX2_TYPES and isinstance(obj, _HTTPX2_TYPES) else httpx


def module_of_type(cls: type[Any]) -> ModuleType:
    """``httpx2`` for one of its client classes (or a subclass), else ``httpx``."""
    return httpx2 if httpx2 is not None and issubclass(cls, httpx2.Client | httpx2.AsyncClient) else httpx


def joined(name: str) -> type[Any]:
    """A class deriving from ``httpx.<name>`` and, when installed, ``httpx2.<name>``."""
    bases = tuple(getattr(m, name) for m in MODULES)
    return bases[0] if len(bases) == 1 else type(name, bases, {"__module__": __name__})


def header_items(headers: httpx.Headers) -> Iterable[tuple[bytes, bytes, bytes]]:
    """The headers as ``(raw name, lower-case name, value)`` bytes. httpx and httpx2 keep
    them so in ``_list``; reading that saves a list copy (``raw``) and a ``lower()`` per
    header (reading an OpenAI request's 17 headers 2.5 -> 1.2 us). Any other shape:
    ``raw``, lowered here."""
    items = getattr(headers, "_list", None)
    if type(items) is list and (not items or (type(items[0]) is tuple and len(items[0]) == 3)):
        return items
    return [(key, key.lower(), value) for key, value in headers.raw]


def add_header(headers: httpx.Headers, lower: bytes, value: str) -> None:
    """Add a header the caller knows is absent (``lower``: its lower-case ASCII name; an
    ASCII ``value``): appended to httpx's own list, as ``headers[name] = value`` appends an
    absent name, without that scan of every header for the name. Any other shape: by
    ``headers[name] = value``."""
    items = getattr(headers, "_list", None)
    if type(items) is list and (not items or (type(items[0]) is tuple and len(items[0]) == 3)):
        items.append((lower, lower, value.encode("ascii")))
    else:
        headers[lower.decode()] = value

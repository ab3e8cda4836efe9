"""Credentials on a request: where a caller's key is read from, for every route.

The gateway and the management API read a key the same way: ``Authorization: Bearer
<key>`` (OpenAI clients), ``x-api-key`` (Anthropic clients) or ``api-key`` (Azure clients).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["key_from_headers"]


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None

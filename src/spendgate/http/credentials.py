"""Credentials on a request: where a caller's key is read from, and when a request may
name its end customer in a header.

The gateway and the management API read a key the same way: LiteLLM's
``x-litellm-api-key: [Bearer ]<key>`` first (it carries the gateway key when
``Authorization`` carries another credential), else ``Authorization: Bearer <key>``
(OpenAI clients), ``x-api-key`` (Anthropic clients) or ``api-key`` (Azure clients).

The end customer may come from the ``x-spendgate-end-user`` header only when the TCP peer
is a trusted proxy (``general_settings.trusted_proxies``, DESIGN §1.9); from anyone else the
header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from spendgate.http.errors import InvalidField

__all__ = [
    "END_USER_HEADER",
    "MAX_ID_CHARS",
    "check_id",
    "end_user_from_header",
    "key_from_headers",
    "trusted_peer",
]

END_USER_HEADER = "x-spendgate-end-user"
"""Names the end customer; trusted only from ``general_settings.trusted_proxies``."""

MAX_ID_CHARS = 255
"""The longest customer id: the width of the ledger's and the customers table's columns."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The caller's key from the first credential header present (module docstring)."""
    litellm = headers.get("x-litellm-api-key")
    if litellm and litellm.strip():
        scheme, _, token = litellm.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else litellm.strip()
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None


def trusted_peer(host: str | None, networks: Sequence[Network]) -> bool:
    """True when ``host`` (the TCP peer) is inside one of ``networks``."""
    if not host or not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def check_id(value: object, param: str) -> None:
    """A customer id (a string) longer than :data:`MAX_ID_CHARS` is a 422 naming ``param``."""
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise InvalidField(f"{param!r} must be at most {MAX_ID_CHARS} characters", param=param)


def end_user_from_header(
    headers: Mapping[str, str], peer_host: str | None, trusted_networks: Sequence[Network]
) -> str | None:
    """The ``x-spendgate-end-user`` header, only from a peer in ``trusted_networks`` (else
    ``None``: ignored); a 422 when the id it names is too long."""
    value = headers.get(END_USER_HEADER)
    if not value or not trusted_networks:
        return None
    if not trusted_peer(peer_host, trusted_networks):
        return None
    check_id(value, END_USER_HEADER)
    return value

"""API keys: how a raw key becomes the hash that is stored, looked up and recorded.

Only the hash of a key is ever stored (``virtual_keys.token``) or recorded on a spend
event (``api_key``); the raw key is shown once, at creation, and never logged.
"""

from __future__ import annotations

import hashlib

__all__ = ["hash_key"]


def hash_key(raw: str) -> str:
    """The stored form of a key: SHA-256 of its UTF-8 bytes, as 64 lowercase hex digits."""
    return hashlib.sha256(raw.encode()).hexdigest()

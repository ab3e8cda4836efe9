"""The dashboard's session: the signed-in key, sealed in a cookie.

The cookie holds the key itself (the dashboard calls the management API with it, so the
API's role rules apply unchanged), encrypted and authenticated with Fernet under a key
derived from the master key with HKDF: a cookie cannot be read, forged or altered, and
rotating the master key signs everyone out. It also holds the session's CSRF token (every
POST must echo it) and is refused after 12 hours (Fernet's timestamp). Nothing is stored
server-side, so any gateway instance behind a load balancer accepts it.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["COOKIE", "SESSION_SECONDS", "Session", "SessionCodec"]

COOKIE = "spendgate_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in: their key, what they are (for the menu only), the CSRF token."""

    key: str
    csrf: str
    role: str
    """``proxy_admin``, ``proxy_admin_viewer``, ``internal_user``, ``internal_user_viewer``
    or ``key`` (a key with no user). Shapes the menu; the API decides what is allowed."""
    label: str
    user_id: str | None = None
    """The key's owner, if it has one: shapes what is offered (a team admin's member
    forms), never what is allowed."""

    @property
    def is_admin(self) -> bool:
        return self.role in ("proxy_admin", "proxy_admin_viewer")

    @property
    def can_write(self) -> bool:
        """Whether to offer forms that change things (viewers only read); the API still
        decides each change."""
        return self.role in ("proxy_admin", "internal_user")

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionCodec:
    """Seals and opens session cookies."""

    def __init__(self, secret: str | None) -> None:
        # Without a master key the management API is off (so no one can sign in usefully);
        # a random secret keeps the codec well-defined.
        material = secret.encode() if secret else secrets.token_bytes(32)
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"spendgate ui session v1"
        ).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, key: str, *, role: str, label: str, user_id: str | None = None) -> tuple[str, Session]:
        session = Session(key=key, csrf=secrets.token_urlsafe(24), role=role, label=label, user_id=user_id)
        payload = orjson.dumps({"k": key, "c": session.csrf, "r": role, "l": label, "u": user_id})
        return self._fernet.encrypt(payload).decode(), session

    def open(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when absent, altered, or older than 12 hours."""
        if not cookie:
            return None
        try:
            data = orjson.loads(self._fernet.decrypt(cookie.encode(), ttl=SESSION_SECONDS))
        except (InvalidToken, orjson.JSONDecodeError):
            return None
        return Session(key=data["k"], csrf=data["c"], role=data["r"], label=data["l"], user_id=data.get("u"))

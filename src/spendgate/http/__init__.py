"""The shared HTTP edge, below the gateway and the management API (which never import each
other): the one error tree that turns failures into an OpenAI-shaped status and body
(:mod:`~spendgate.http.errors`, storage outages into 503), reading a body within its limit
(:mod:`~spendgate.http.body`), credentials: the key, trusted proxies and the end-user header
(:mod:`~spendgate.http.credentials`), and every response header's name and format
(:mod:`~spendgate.http.headers`)."""

from __future__ import annotations

__all__: list[str] = []

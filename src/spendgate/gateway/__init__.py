"""The gateway: an OpenAI- and Anthropic-compatible proxy that meters and records every call.

See ``docs/gateway.md``. Build the ASGI app with :func:`build_app`; the request path is
:mod:`spendgate.gateway.pipeline`.
"""

from __future__ import annotations

from spendgate.gateway.app import build_app

__all__ = ["build_app"]

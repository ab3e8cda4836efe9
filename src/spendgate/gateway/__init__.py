"""The gateway: an OpenAI- and Anthropic-compatible proxy that meters and records every call.

See ``docs/gateway.md``. The request path is :mod:`spendgate.gateway.pipeline`, read top to
bottom; its routes are in :mod:`spendgate.gateway.routes`. The app is assembled by the
composition root, :func:`spendgate.server.build_app`.
"""

from __future__ import annotations

__all__: list[str] = []

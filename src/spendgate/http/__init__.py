"""The shared HTTP edge, below both the gateway and the management API: the one error
tree that turns failures into an OpenAI-shaped status and body (storage outages into
503), and how credentials are read from a request."""

from __future__ import annotations

__all__: list[str] = []

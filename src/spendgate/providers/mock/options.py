"""Server-wide options of the mock provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MockOptions"]


@dataclass(frozen=True, slots=True)
class MockOptions:
    """Server defaults; the ``x-mock-*`` headers override them per request.

    Attributes:
        latency_ms: delay before every response.
        chunk_delay_ms: delay between stream events.
        default_completion_tokens: completion tokens when the request sets no maximum.
        batch_polls: retrieves of a batch until it is completed (1st retrieve:
            ``in_progress``; the ``batch_polls``-th: ``completed``).
        batch_seconds: if set, a batch completes this many seconds after creation instead.
        batch_done_on_cancel: input lines a batch has run when it is cancelled (header
            ``x-mock-batch-done-on-cancel`` on the create request overrides): the first N
            lines end with their real result (output or error file, usage, counts), the
            rest are cancelled. ``None`` or 0: a cancelled batch has no output.
        embedding_dimensions: length of embedding vectors unless ``dimensions`` is given.
        record_requests: how many recent requests ``GET /mock/requests`` keeps.
        faults: faults queued at start, as accepted by ``POST /mock/faults``.
    """

    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    default_completion_tokens: int = 16
    batch_polls: int = 2
    batch_seconds: float | None = None
    batch_done_on_cancel: int | None = None
    embedding_dimensions: int = 16
    record_requests: int = 256
    faults: Sequence[Mapping[str, Any]] = ()

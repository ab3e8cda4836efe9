"""Per-request controls: the ``x-mock-*`` headers, and the faults queued on the server.

=============================  ==============================================================
header                         effect
=============================  ==============================================================
``x-mock-completion-tokens``   completion tokens per choice (overrides ``max_tokens``)
``x-mock-cached-tokens``       cached prompt tokens (OpenAI ``cached_tokens``, Anthropic
                               ``cache_read_input_tokens``)
``x-mock-cache-write-tokens``  Anthropic ``cache_creation_input_tokens`` (5-minute TTL)
``x-mock-cache-write-1h-tokens``  Anthropic cache writes with the 1-hour TTL
``x-mock-reasoning-tokens``    reasoning tokens, part of the completion tokens
``x-mock-latency-ms``          delay before the response (overrides the server default)
``x-mock-chunk-delay-ms``      delay between stream events
``x-mock-status``              respond with this error status instead
``x-mock-retry-after``         ``retry-after`` seconds on 429/503/529 (default 1)
``x-mock-error-message``       the error message of an injected status
``x-mock-disconnect-after``    stream this many events, then drop the connection
``x-mock-hang``                ``1``: never respond (until the client disconnects)
``x-mock-no-usage``            ``1``: report no usage (no usage chunk, no ``usage`` field)
``x-mock-audio-seconds``       duration of an uploaded audio file
``x-mock-batch-polls``         retrieves until a created batch completes
``x-mock-batch-done-on-cancel``  input lines a created batch has run when it is cancelled
                               (their results are kept; the rest produce none)
=============================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spendgate.providers.mock._http import MockHTTPError

__all__ = ["Controls", "FaultQueue", "QueuedFault"]

_INT_FIELDS = {
    "completion-tokens": "completion_tokens",
    "cached-tokens": "cached_tokens",
    "cache-write-tokens": "cache_write_tokens",
    "cache-write-1h-tokens": "cache_write_1h_tokens",
    "reasoning-tokens": "reasoning_tokens",
    "status": "status",
    "disconnect-after": "disconnect_after",
    "batch-polls": "batch_polls",
    "batch-done-on-cancel": "batch_done_on_cancel",
}
_FLOAT_FIELDS = {
    "latency-ms": "latency_ms",
    "chunk-delay-ms": "chunk_delay_ms",
    "retry-after": "retry_after",
    "audio-seconds": "audio_seconds",
}
_BOOL_FIELDS = {"hang": "hang", "no-usage": "no_usage"}


@dataclass(slots=True)
class Controls:
    """How one request is served; every field unset means "the server's default"."""

    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    latency_ms: float | None = None
    chunk_delay_ms: float | None = None
    status: int | None = None
    retry_after: float | None = None
    error_message: str | None = None
    disconnect_after: int | None = None
    hang: bool = False
    no_usage: bool = False
    audio_seconds: float | None = None
    batch_polls: int | None = None
    batch_done_on_cancel: int | None = None

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Controls:
        """Controls from ``x-mock-*`` headers (names without the prefix).

        Raises:
            MockHTTPError: 400 for an unknown header or a malformed value.
        """
        controls = cls()
        for name, value in headers.items():
            try:
                if name in _INT_FIELDS:
                    number = int(value)
                    if number < 0:
                        raise ValueError(value)
                    setattr(controls, _INT_FIELDS[name], number)
                elif name in _FLOAT_FIELDS:
                    real = float(value)
                    if not real >= 0:
                        raise ValueError(value)
                    setattr(controls, _FLOAT_FIELDS[name], real)
                elif name in _BOOL_FIELDS:
                    setattr(controls, _BOOL_FIELDS[name], value.strip().lower() in ("1", "true", "yes"))
                elif name == "error-message":
                    controls.error_message = value
                else:
                    raise MockHTTPError(400, f"unknown mock header x-mock-{name}", param=f"x-mock-{name}")
            except ValueError:
                raise MockHTTPError(
                    400, f"x-mock-{name}: not a non-negative number: {value!r}", param=f"x-mock-{name}"
                ) from None
        return controls

    def apply(self, fault: dict[str, Any]) -> None:
        """Overlay a queued fault (its set fields win over the headers)."""
        for key, value in fault.items():
            setattr(self, key, value)


_FAULT_FIELDS = frozenset(
    (
        "status",
        "retry_after",
        "error_message",
        "disconnect_after",
        "hang",
        "no_usage",
        "latency_ms",
        "chunk_delay_ms",
    )
)
_MATCH_FIELDS = ("path", "model", "api_key")


@dataclass(slots=True)
class QueuedFault:
    """A fault applied to the next ``times`` requests that match ``path``/``model``/``api_key``."""

    fault: dict[str, Any]
    times: int = 1
    path: str | None = None
    model: str | None = None
    api_key: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> QueuedFault:
        """Parse ``{"status": 503, "times": 2, "model": "gpt-4o", ...}``.

        Raises:
            ValueError: unknown field or wrong type.
        """
        if not isinstance(data, dict):
            raise ValueError("a fault must be an object")
        fault: dict[str, Any] = {}
        queued = cls(fault)
        for key, value in data.items():
            if key == "times":
                if not isinstance(value, int) or value < 1:
                    raise ValueError("times must be a positive integer")
                queued.times = value
            elif key in _MATCH_FIELDS:
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{key} must be a string")
                if key == "path" and value is not None:
                    value = _route_path(value)
                setattr(queued, key, value)
            elif key in _FAULT_FIELDS:
                if key in ("hang", "no_usage"):
                    if not isinstance(value, bool):
                        raise ValueError(f"{key} must be a boolean")
                elif key == "error_message":
                    if not isinstance(value, str):
                        raise ValueError(f"{key} must be a string")
                elif value is not None and (not isinstance(value, int | float) or value < 0):
                    raise ValueError(f"{key} must be a non-negative number")
                fault[key] = value
            else:
                raise ValueError(f"unknown fault field {key!r}")
        return queued

    def matches(self, path: str, model: str | None, api_key: str | None) -> bool:
        return (
            (self.path is None or self.path == path)
            and (self.model is None or self.model == model)
            and (self.api_key is None or self.api_key == api_key)
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.fault, "times": self.times}
        for key in _MATCH_FIELDS:
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def _route_path(path: str) -> str:
    return path[3:] if path.startswith("/v1/") else path


class FaultQueue:
    """Faults queued through ``POST /mock/faults``, consumed in order by matching requests."""

    def __init__(self) -> None:
        self._queue: list[QueuedFault] = []

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, fault: QueuedFault) -> None:
        self._queue.append(fault)

    def pop(self, path: str, model: str | None, api_key: str | None) -> dict[str, Any] | None:
        """The first queued fault matching this request, consuming one of its ``times``."""
        for index, queued in enumerate(self._queue):
            if queued.matches(path, model, api_key):
                queued.times -= 1
                if queued.times == 0:
                    del self._queue[index]
                return queued.fault
        return None

    def clear(self) -> None:
        self._queue.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [queued.to_json() for queued in self._queue]

"""Request counters of the mock provider, served at ``GET /mock/stats``."""

from __future__ import annotations

from typing import Any

__all__ = ["MockStats"]


class _Gauge:
    __slots__ = ("in_flight", "max_in_flight", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def enter(self) -> None:
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def reset(self) -> None:
        self.requests = 0
        self.max_in_flight = self.in_flight

    def to_json(self) -> dict[str, int]:
        return {"requests": self.requests, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight}


class MockStats:
    """Totals, in-flight gauges (overall and per API key), statuses and reported usage.

    The server runs on one event loop, so plain integers are enough. ``/mock/*`` requests
    are not counted.
    """

    def __init__(self) -> None:
        self._all = _Gauge()
        self._by_key: dict[str, _Gauge] = {}
        self.by_path: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.input_tokens = 0
        self.output_tokens = 0

    def enter(self, path: str, api_key: str | None) -> None:
        self._all.enter()
        self.by_path[path] = self.by_path.get(path, 0) + 1
        if api_key is not None:
            gauge = self._by_key.get(api_key)
            if gauge is None:
                gauge = self._by_key[api_key] = _Gauge()
            gauge.enter()

    def exit(self, api_key: str | None, status: int) -> None:
        self._all.in_flight -= 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if api_key is not None:
            self._by_key[api_key].in_flight -= 1

    def add_usage(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens

    def reset(self) -> None:
        """Zero the counters; requests still in flight stay counted as in flight."""
        self._all.reset()
        for key in [key for key, gauge in self._by_key.items() if gauge.in_flight == 0]:
            del self._by_key[key]
        for gauge in self._by_key.values():
            gauge.reset()
        self.by_path.clear()
        self.by_status.clear()
        self.input_tokens = self.output_tokens = 0

    def to_json(self) -> dict[str, Any]:
        return {
            **self._all.to_json(),
            "by_path": dict(self.by_path),
            "by_key": {key: gauge.to_json() for key, gauge in self._by_key.items()},
            "by_status": {str(status): count for status, count in self.by_status.items()},
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }

"""Anthropic message batches (``/v1/messages/batches``), with the same poll-driven lifecycle
as the OpenAI batches in :mod:`.batches`.

A batch is ``in_progress`` when created; retrieve number ``batch_polls`` (or, with the
``batch_seconds`` option, the first retrieve after that many seconds) shows ``ended`` with a
``results_url``. Each request runs through the live ``/v1/messages`` builder; a request
whose ``custom_id`` starts with ``fail`` or whose params are invalid is ``errored``. A
cancelled batch goes ``canceling``, then, on the next poll, ``ended`` with every request
``canceled``; with ``x-mock-batch-done-on-cancel: N`` on the create request (or the server
option ``batch_done_on_cancel``) the first N requests had run by then and end with their
real result (``succeeded`` or ``errored``, as at a normal end), only the rest ``canceled``,
and ``request_counts`` say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from spendgate.providers.mock._http import MockHTTPError, new_id
from spendgate.providers.mock.anthropic_api import message_payload
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.options import MockOptions

__all__ = ["MessageBatchStore"]


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass(slots=True)
class _MessageBatch:
    id: str
    requests: list[dict[str, Any]]
    controls: Controls
    polls_needed: int
    seconds_needed: float | None
    done_on_cancel: int
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    status: str = "in_progress"
    polls: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    results: bytes | None = None
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None

    def to_json(self, base_url: str) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0, **self.counts}
        if self.results is None:
            counts["processing"] = len(self.requests)
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": counts,
            "created_at": _stamp(self.created_at),
            "expires_at": _stamp(self.created_at + timedelta(hours=24)),
            "ended_at": _stamp(self.ended_at),
            "archived_at": None,
            "cancel_initiated_at": _stamp(self.cancel_initiated_at),
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results"
            if self.results is not None
            else None,
        }


class MessageBatchStore:
    def __init__(self, options: MockOptions) -> None:
        self._options = options
        self._batches: dict[str, _MessageBatch] = {}

    def create(self, body: dict[str, Any], controls: Controls, base_url: str) -> dict[str, Any]:
        """``POST /v1/messages/batches``."""
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise MockHTTPError(400, "requests: must be a non-empty list", param="requests")
        for request in requests:
            if not isinstance(request, dict) or not isinstance(request.get("custom_id"), str):
                raise MockHTTPError(400, "requests: each request needs a custom_id", param="requests")
            if not isinstance(request.get("params"), dict):
                raise MockHTTPError(400, "requests: each request needs params", param="requests")
        polls = controls.batch_polls if controls.batch_polls is not None else self._options.batch_polls
        done_on_cancel = controls.batch_done_on_cancel
        if done_on_cancel is None:
            done_on_cancel = self._options.batch_done_on_cancel or 0
        batch = _MessageBatch(
            new_id("msgbatch_"), requests, controls, polls, self._options.batch_seconds, done_on_cancel
        )
        self._batches[batch.id] = batch
        if batch.seconds_needed is None and polls <= 0:
            self._end(batch)
        return batch.to_json(base_url)

    def retrieve(self, batch_id: str, base_url: str) -> dict[str, Any]:
        """``GET /v1/messages/batches/{id}``: one poll."""
        batch = self._get(batch_id)
        batch.polls += 1
        if batch.status == "canceling":
            self._end(batch, done=batch.done_on_cancel)
        elif batch.status == "in_progress":
            if batch.seconds_needed is not None:
                ready = time.monotonic() - batch.started >= batch.seconds_needed
            else:
                ready = batch.polls >= batch.polls_needed
            if ready:
                self._end(batch)
        return batch.to_json(base_url)

    def cancel(self, batch_id: str, base_url: str) -> dict[str, Any]:
        """``POST /v1/messages/batches/{id}/cancel``."""
        batch = self._get(batch_id)
        if batch.status == "in_progress":
            batch.status = "canceling"
            batch.cancel_initiated_at = datetime.now(UTC)
        return batch.to_json(base_url)

    def results(self, batch_id: str) -> bytes:
        """``GET /v1/messages/batches/{id}/results``: JSONL, once the batch has ended."""
        batch = self._get(batch_id)
        if batch.results is None:
            raise MockHTTPError(400, f"Message batch {batch_id} has not ended yet")
        return batch.results

    def list(self, limit: int, base_url: str) -> dict[str, Any]:
        """``GET /v1/messages/batches``: newest first."""
        page = list(reversed(self._batches.values()))[:limit]
        return {
            "data": [batch.to_json(base_url) for batch in page],
            "has_more": len(self._batches) > limit,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }

    def _get(self, batch_id: str) -> _MessageBatch:
        try:
            return self._batches[batch_id]
        except KeyError:
            raise MockHTTPError(404, f"message batch {batch_id} not found") from None

    def _end(self, batch: _MessageBatch, *, done: int | None = None) -> None:
        """End the batch: its first ``done`` requests (all when ``None``) get their real
        result, the rest are ``canceled``."""
        lines: list[bytes] = []
        counts = {"succeeded": 0, "errored": 0, "canceled": 0}
        for index, request in enumerate(batch.requests):
            custom_id = request["custom_id"]
            ran = done is None or index < done
            result = self._result(batch, request) if ran else {"type": "canceled"}
            counts[result["type"]] += 1
            lines.append(orjson.dumps({"custom_id": custom_id, "result": result}))
        batch.results = b"\n".join(lines) + b"\n"
        batch.counts = counts
        batch.status = "ended"
        batch.ended_at = datetime.now(UTC)

    def _result(self, batch: _MessageBatch, request: dict[str, Any]) -> dict[str, Any]:
        """One request run through the live ``/v1/messages`` builder: ``succeeded`` or ``errored``."""
        custom_id = request["custom_id"]
        try:
            if custom_id.startswith("fail"):
                raise MockHTTPError(400, f"mock: request {custom_id} made to fail")
            params = {**request["params"], "stream": False}
            return {"type": "succeeded", "message": message_payload(params, batch.controls, self._options)}
        except MockHTTPError as exc:
            error = {"type": "invalid_request_error", "message": exc.message}
            return {"type": "errored", "error": {"type": "error", "error": error}}

"""Files and batches: an in-memory store with OpenAI's batch lifecycle.

A batch is ``validating`` when created. Each retrieve (``GET /v1/batches/{id}``) is one
poll: the first poll shows ``in_progress`` and poll number ``batch_polls`` (server option,
default 2; header ``x-mock-batch-polls`` on the create request) shows ``completed``. With
the ``batch_seconds`` option the batch completes that many seconds after creation instead.

On completion every input line runs through the same builders as the live endpoints (with
the ``x-mock-*`` usage headers of the create request). A line whose ``custom_id`` starts
with ``fail``, or whose request is invalid, goes to the error file as a response with
status 400 and an OpenAI error body; the other lines go to the output file as::

    {"id": "batch_req_…", "custom_id": "…",
     "response": {"status_code": 200, "request_id": "req_…", "body": <chat completion …>},
     "error": null}

A cancelled batch goes ``cancelling`` and, on the next poll, ``cancelled``, with no output.
With ``x-mock-batch-done-on-cancel: N`` on the create request (or the server option
``batch_done_on_cancel``) the batch had run its first N input lines when it was cancelled:
those lines go through the same builders as on completion (``fail*`` ids and invalid
bodies to the error file), and the cancelled batch has their output and error files,
``usage``, and ``request_counts`` with ``total`` all lines and ``completed``/``failed``
among those N. The remaining lines produce nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from spendgate.providers.mock import openai_api, openai_media, openai_responses
from spendgate.providers.mock._http import MockHTTPError, new_id, now
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.options import MockOptions

__all__ = ["BatchStore", "FileStore", "StoredFile"]

_Builder = Callable[[dict[str, Any], Controls, MockOptions], dict[str, Any]]
_ENDPOINTS: dict[str, _Builder] = {
    "/v1/chat/completions": openai_api.chat_completion_payload,
    "/v1/completions": openai_api.completion_payload,
    "/v1/embeddings": openai_media.embeddings_payload,
    "/v1/responses": openai_responses.response_payload,
}
_WINDOW_SECONDS = 24 * 3600


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(new_id("file-"), filename, purpose, data)
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        try:
            return self._files[file_id]
        except KeyError:
            raise MockHTTPError(404, f"No such File object: {file_id}", param="id") from None

    def delete(self, file_id: str) -> None:
        self.get(file_id)
        del self._files[file_id]

    def list(self, purpose: str | None = None) -> list[StoredFile]:
        return [f for f in self._files.values() if purpose is None or f.purpose == purpose]


@dataclass(slots=True)
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None
    controls: Controls
    polls_needed: int
    seconds_needed: float | None
    done_on_cancel: int
    created_at: int = field(default_factory=now)
    started: float = field(default_factory=time.monotonic)
    status: str = "validating"
    polls: int = 0
    model: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    usage: dict[str, Any] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    times: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        stamp = self.times.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress"),
            "expires_at": self.created_at + _WINDOW_SECONDS,
            "finalizing_at": stamp("finalizing"),
            "completed_at": stamp("completed"),
            "failed_at": stamp("failed"),
            "expired_at": None,
            "cancelling_at": stamp("cancelling"),
            "cancelled_at": stamp("cancelled"),
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "usage": self.usage,
            "metadata": self.metadata,
        }


class BatchStore:
    """Batches over a :class:`FileStore`; status advances on retrieve (see module docstring)."""

    def __init__(self, files: FileStore, options: MockOptions) -> None:
        self._files = files
        self._options = options
        self._batches: dict[str, _Batch] = {}

    def create(self, body: dict[str, Any], controls: Controls) -> dict[str, Any]:
        """``POST /v1/batches``: validate the request and the input file."""
        input_file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        window = body.get("completion_window")
        if not isinstance(input_file_id, str):
            raise MockHTTPError(400, "input_file_id is required", param="input_file_id")
        if endpoint not in _ENDPOINTS:
            raise MockHTTPError(400, f"unsupported endpoint {endpoint!r}", param="endpoint")
        if window != "24h":
            raise MockHTTPError(400, "completion_window must be '24h'", param="completion_window")
        metadata = body.get("metadata")
        stored = self._files.get(input_file_id)
        if stored.purpose != "batch":
            raise MockHTTPError(400, f"file {input_file_id} has purpose {stored.purpose!r}, not 'batch'")
        done_on_cancel = controls.batch_done_on_cancel
        if done_on_cancel is None:
            done_on_cancel = self._options.batch_done_on_cancel or 0
        batch = _Batch(
            new_id("batch_"),
            input_file_id,
            endpoint,
            window,
            metadata if isinstance(metadata, dict) else None,
            controls,
            controls.batch_polls if controls.batch_polls is not None else self._options.batch_polls,
            self._options.batch_seconds,
            done_on_cancel,
        )
        self._validate(batch, stored.data)
        self._batches[batch.id] = batch
        if batch.status == "validating" and batch.seconds_needed is None and batch.polls_needed <= 0:
            self._complete(batch)
        return batch.to_json()

    def _validate(self, batch: _Batch, data: bytes) -> None:
        errors: list[dict[str, Any]] = []
        lines = [line for line in data.splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):
            try:
                request = orjson.loads(line)
            except orjson.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "line": number, "message": "not JSON"})
                continue
            if not isinstance(request, dict) or not isinstance(request.get("custom_id"), str):
                errors.append({"code": "missing_required_parameter", "line": number, "message": "custom_id"})
            elif request.get("url") != batch.endpoint:
                errors.append(
                    {"code": "mismatched_url", "line": number, "message": f"url must be {batch.endpoint}"}
                )
            elif batch.model is None and isinstance(request.get("body"), dict):
                model = request["body"].get("model")
                batch.model = model if isinstance(model, str) else None
        if not lines:
            errors.append({"code": "empty_file", "line": None, "message": "the input file is empty"})
        batch.total = len(lines)
        if errors:
            for error in errors:
                error["param"] = None
            batch.errors = errors
            batch.status = "failed"
            batch.times["failed"] = now()

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """``GET /v1/batches/{id}``: one poll."""
        batch = self._get(batch_id)
        batch.polls += 1
        if batch.status == "cancelling":
            if batch.done_on_cancel > 0:
                self._run(batch, self._input_lines(batch)[: batch.done_on_cancel])
            batch.status = "cancelled"
            batch.times["cancelled"] = now()
        elif batch.status in ("validating", "in_progress"):
            if batch.seconds_needed is not None:
                ready = time.monotonic() - batch.started >= batch.seconds_needed
            else:
                ready = batch.polls >= batch.polls_needed
            if ready:
                self._complete(batch)
            elif batch.status == "validating":
                batch.status = "in_progress"
                batch.times["in_progress"] = now()
        return batch.to_json()

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """``POST /v1/batches/{id}/cancel``."""
        batch = self._get(batch_id)
        if batch.status not in ("validating", "in_progress"):
            raise MockHTTPError(400, f"Cannot cancel a batch with status {batch.status!r}.")
        batch.status = "cancelling"
        batch.times["cancelling"] = now()
        return batch.to_json()

    def list(self, limit: int, after: str | None) -> dict[str, Any]:
        """``GET /v1/batches``: newest first, paginated with ``after``."""
        batches = list(reversed(self._batches.values()))
        if after is not None:
            ids = [batch.id for batch in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        page = batches[:limit]
        return {
            "object": "list",
            "data": [batch.to_json() for batch in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(batches) > limit,
        }

    def _get(self, batch_id: str) -> _Batch:
        try:
            return self._batches[batch_id]
        except KeyError:
            raise MockHTTPError(404, f"No such Batch object: {batch_id}", param="batch_id") from None

    def _input_lines(self, batch: _Batch) -> Sequence[bytes]:
        """The batch's non-blank input lines, in file order."""
        return [line for line in self._files.get(batch.input_file_id).data.splitlines() if line.strip()]

    def _complete(self, batch: _Batch) -> None:
        self._run(batch, self._input_lines(batch))
        stamp = now()
        batch.times.setdefault("in_progress", stamp)
        batch.times["finalizing"] = stamp
        batch.times["completed"] = stamp
        batch.status = "completed"

    def _run(self, batch: _Batch, lines: Sequence[bytes]) -> None:
        """Run ``lines`` through the endpoint's builder and record their output on ``batch``:
        the output and error files, ``completed``/``failed`` and the summed ``usage``."""
        build = _ENDPOINTS[batch.endpoint]
        outputs: list[bytes] = []
        failures: list[bytes] = []
        totals = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
        for line in lines:
            request = orjson.loads(line)
            custom_id = request["custom_id"]
            body = request.get("body")
            try:
                if custom_id.startswith("fail"):
                    raise MockHTTPError(400, f"mock: request {custom_id} made to fail")
                if not isinstance(body, dict):
                    raise MockHTTPError(400, "body must be an object", param="body")
                payload = build({**body, "stream": False}, batch.controls, self._options)
            except MockHTTPError as exc:
                error = {
                    "message": exc.message,
                    "type": "invalid_request_error",
                    "param": exc.param,
                    "code": None,
                }
                failures.append(_line(custom_id, exc.status, {"error": error}))
                continue
            _add_usage(totals, payload.get("usage"))
            outputs.append(_line(custom_id, 200, payload))
        batch.completed = len(outputs)
        batch.failed = len(failures)
        if outputs:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self._files.add(name, "batch_output", b"\n".join(outputs) + b"\n").id
        if failures:
            name = f"{batch.id}_error.jsonl"
            batch.error_file_id = self._files.add(name, "batch_output", b"\n".join(failures) + b"\n").id
        batch.usage = {
            "input_tokens": totals["input"],
            "input_tokens_details": {"cached_tokens": totals["cached"]},
            "output_tokens": totals["output"],
            "output_tokens_details": {"reasoning_tokens": totals["reasoning"]},
            "total_tokens": totals["input"] + totals["output"],
        }


def _line(custom_id: str, status: int, body: dict[str, Any]) -> bytes:
    response = {"status_code": status, "request_id": new_id("req_"), "body": body}
    return orjson.dumps(
        {"id": new_id("batch_req_"), "custom_id": custom_id, "response": response, "error": None}
    )


def _add_usage(totals: dict[str, int], usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    totals["input"] += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    totals["output"] += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    details_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    details_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    totals["cached"] += details_in.get("cached_tokens", 0)
    totals["reasoning"] += details_out.get("reasoning_tokens", 0)

"""The mock provider's ASGI application: a plain ASGI callable, no framework on the hot path.

Every route also answers without the ``/v1`` prefix. A request goes: count it in the
stats → read the body → controls from ``x-mock-*`` headers, overlaid by a queued fault →
latency → hang / injected status → handler → send (whole, or streamed event by event when
a chunk delay or a disconnect is asked for).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from spendgate.providers.mock import anthropic_api, openai_api, openai_media, openai_responses
from spendgate.providers.mock._http import MockHTTPError, Reply, json_reply, new_id
from spendgate.providers.mock._multipart import parse_form
from spendgate.providers.mock.batches import BatchStore, FileStore
from spendgate.providers.mock.controls import Controls, FaultQueue, QueuedFault
from spendgate.providers.mock.message_batches import MessageBatchStore
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.stats import MockStats

__all__ = ["OPTIONS_ENV", "MockProvider", "MockRequest", "app_from_environment", "create_app"]

logger = logging.getLogger("spendgate.mock")


class MockRequest:
    """One request as the handlers see it."""

    __slots__ = (
        "api_key",
        "body",
        "content_type",
        "controls",
        "data",
        "host",
        "method",
        "param",
        "path",
        "query",
    )

    def __init__(self, method: str, path: str, param: str, query: bytes, api_key: str | None) -> None:
        self.method = method
        self.path = path
        self.param = param
        self.query = query
        self.api_key = api_key
        self.body = b""
        self.content_type = ""
        self.data: Any = None
        self.controls = _NO_CONTROLS
        self.host = "127.0.0.1"

    def json(self) -> dict[str, Any]:
        if not isinstance(self.data, dict):
            raise MockHTTPError(400, "the request body must be a JSON object")
        return self.data

    def form(self) -> dict[str, Any]:
        try:
            return parse_form(self.body, self.content_type)
        except ValueError as exc:
            raise MockHTTPError(400, str(exc)) from None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def query_param(self, name: str) -> str | None:
        for pair in self.query.decode("latin-1").split("&"):
            key, _, value = pair.partition("=")
            if key == name:
                return value
        return None


_Handler = Callable[["MockProvider", MockRequest], Reply]
# Shared by requests without x-mock-* headers or faults; never mutated.
_NO_CONTROLS = Controls()

# Anthropic error types by status; OpenAI's are (type, code).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_RETRY_STATUSES = frozenset((429, 503, 529))

# Set by a handler that drops the connection on purpose, so that uvicorn's
# "returned without completing response" error is not logged for it.
_dropping: contextvars.ContextVar[bool] = contextvars.ContextVar("spendgate_mock_dropping", default=False)


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_dropping.get() and "without completing response" in str(record.msg))


_DROP_FILTER = _DeliberateDropFilter()


class MockProvider:
    """The ASGI app. ``stats``, ``faults``, ``files`` and ``batches`` are live state.

    Args:
        options: server defaults.
    """

    def __init__(self, options: MockOptions | None = None) -> None:
        self.options = options or MockOptions()
        self.stats = MockStats()
        self.faults = FaultQueue()
        for fault in self.options.faults:
            self.faults.push(QueuedFault.from_json(dict(fault)))
        self.files = FileStore()
        self.batches = BatchStore(self.files, self.options)
        self.message_batches = MessageBatchStore(self.options)
        self.recent: deque[dict[str, Any]] = deque(maxlen=max(self.options.record_requests, 0) or None)
        self._closing = asyncio.Event()
        uvicorn_errors = logging.getLogger("uvicorn.error")
        if _DROP_FILTER not in uvicorn_errors.filters:
            uvicorn_errors.addFilter(_DROP_FILTER)

    def close(self) -> None:
        """End hanging requests (call on the server's loop before shutting down)."""
        self._closing.set()

    def reset(self) -> None:
        """Zero the stats, forget queued faults and recorded requests (files/batches stay)."""
        self.stats.reset()
        self.faults.clear()
        self.recent.clear()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        route = path[3:] if path.startswith("/v1/") else path
        if route.startswith("/mock/"):
            await self._admin(scope, route, receive, send)
            return
        method: str = scope["method"]
        handler, template, param = _resolve(method, route)
        api_key: str | None = None
        content_type = ""
        mock_headers: dict[str, str] = {}
        host = b""
        for name, value in scope["headers"]:
            if name.startswith(b"x-mock-"):
                mock_headers[name[7:].decode("latin-1")] = value.decode("latin-1")
            elif name == b"authorization":
                api_key = value.decode("latin-1").removeprefix("Bearer ").strip()
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"host":
                host = value
        request = MockRequest(method, route, param, scope.get("query_string", b""), api_key)
        request.content_type = content_type
        if host:
            request.host = host.decode("latin-1")
        anthropic = template.startswith("/messages")
        self.stats.enter("/v1" + template, api_key)
        status = 500
        try:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            request.body = body
            if body and not content_type.startswith("multipart/"):
                try:
                    request.data = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise MockHTTPError(400, "the request body is not valid JSON") from None
            controls = Controls.from_headers(mock_headers) if mock_headers else _NO_CONTROLS
            model = request.data.get("model") if isinstance(request.data, dict) else None
            if self.faults:
                fault = self.faults.pop(template, model if isinstance(model, str) else None, api_key)
                if fault:
                    if controls is _NO_CONTROLS:
                        controls = Controls()
                    controls.apply(fault)
            request.controls = controls
            self.recent.append(
                {
                    "method": method,
                    "path": path,
                    "api_key": api_key,
                    "model": model,
                    "mock_headers": mock_headers,
                    "body": request.data,
                }
            )
            latency = controls.latency_ms if controls.latency_ms is not None else self.options.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            if controls.hang:
                status = await self._hang(receive)
                if status == 503:
                    raise MockHTTPError(503, "mock: server shutting down")
                return
            if controls.status is not None and controls.status >= 400:
                retry = controls.retry_after
                if retry is None and controls.status in _RETRY_STATUSES:
                    retry = 1
                message_text = controls.error_message or f"mock: injected status {controls.status}"
                raise MockHTTPError(controls.status, message_text, retry_after=retry)
            if handler is None:
                if template == "/404":
                    raise MockHTTPError(404, f"Unknown request URL: {method} {path}", code="unknown_url")
                raise MockHTTPError(405, f"Method {method} not allowed for {path}")
            reply = handler(self, request)
            status = reply.status
            await self._send(reply, controls, receive, send, anthropic)
        except MockHTTPError as exc:
            status = exc.status
            await _send_error(send, exc, anthropic)
        except Exception:
            logger.exception("mock provider: unexpected error on %s %s", method, path)
            status = 500
            await _send_error(send, MockHTTPError(500, "mock: internal error"), anthropic)
        finally:
            self.stats.exit(api_key, status)

    async def _hang(self, receive: Receive) -> int:
        """Wait until the client disconnects (499) or the server closes (503)."""
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                message = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait((message, closing), return_when=asyncio.FIRST_COMPLETED)
                if closing in done:
                    message.cancel()
                    return 503
                if message.result()["type"] == "http.disconnect":
                    return 499
        finally:
            closing.cancel()

    async def _send(
        self, reply: Reply, controls: Controls, receive: Receive, send: Send, anthropic: bool
    ) -> None:
        headers = [
            (b"content-type", reply.content_type),
            (b"request-id" if anthropic else b"x-request-id", new_id("req_").encode()),
            *reply.headers,
        ]
        events = reply.events
        cut = controls.disconnect_after
        if events is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            if cut is not None:
                # Half the body, then the connection drops (see the streaming case below).
                half = reply.body[: len(reply.body) // 2]
                await send({"type": "http.response.body", "body": half, "more_body": True})
                _dropping.set(True)
                return
            await send({"type": "http.response.body", "body": reply.body})
            self.stats.add_usage(reply.input_tokens, reply.output_tokens)
            return
        headers.append((b"cache-control", b"no-cache"))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        delay = (
            controls.chunk_delay_ms if controls.chunk_delay_ms is not None else self.options.chunk_delay_ms
        )
        if cut is None and delay <= 0:
            await send({"type": "http.response.body", "body": b"".join(events)})
            self.stats.add_usage(reply.input_tokens, reply.output_tokens)
            return
        if cut is not None:
            events = events[:cut]
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone)) if delay > 0 else None
        try:
            for index, event in enumerate(events):
                if index and delay > 0:
                    await asyncio.sleep(delay / 1000)
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            if watcher is not None:
                watcher.cancel()
        if cut is not None:
            # Return without finishing the body: the server closes the connection mid-stream.
            _dropping.set(True)
            return
        await send({"type": "http.response.body", "body": b""})
        self.stats.add_usage(reply.input_tokens, reply.output_tokens)

    # ------------------------------------------------------------------ admin

    async def _admin(self, scope: Scope, route: str, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method = scope["method"]
        try:
            reply = self._admin_reply(method, route, body)
        except MockHTTPError as exc:
            await _send_error(send, exc, anthropic=False)
            return
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(reply.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    def _admin_reply(self, method: str, route: str, body: bytes) -> Reply:
        if route == "/mock/stats" and method == "GET":
            return json_reply(self.stats.to_json())
        if route == "/mock/reset" and method == "POST":
            self.reset()
            return json_reply({"reset": True})
        if route == "/mock/health" and method == "GET":
            return json_reply({"status": "ok"})
        if route == "/mock/requests" and method == "GET":
            return json_reply({"data": list(self.recent)})
        if route == "/mock/faults":
            if method == "GET":
                return json_reply({"data": self.faults.to_json()})
            if method == "DELETE":
                self.faults.clear()
                return json_reply({"data": []})
            if method == "POST":
                try:
                    data = orjson.loads(body)
                    items = data.get("faults", [data]) if isinstance(data, dict) else data
                    if not isinstance(items, list):
                        raise ValueError("expected a fault, a list of faults or {'faults': [...]}")
                    queued = [QueuedFault.from_json(item) for item in items]
                except (orjson.JSONDecodeError, ValueError) as exc:
                    raise MockHTTPError(400, f"bad fault: {exc}") from None
                for fault in queued:
                    self.faults.push(fault)
                return json_reply({"data": self.faults.to_json()})
        raise MockHTTPError(404, f"Unknown mock admin route: {method} {route}")


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _send_error(send: Send, exc: MockHTTPError, anthropic: bool) -> None:
    if anthropic:
        kind = _ANTHROPIC_TYPES.get(exc.status, "api_error")
        payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": exc.message}}
    else:
        kind, code = _OPENAI_TYPES.get(exc.status, ("server_error", None))
        error = {"message": exc.message, "type": kind, "param": exc.param, "code": exc.code or code}
        payload = {"error": error}
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"request-id" if anthropic else b"x-request-id", new_id("req_").encode()),
    ]
    if exc.retry_after is not None:
        retry = exc.retry_after
        headers.append((b"retry-after", str(int(retry) if retry == int(retry) else retry).encode()))
        headers.append((b"retry-after-ms", str(int(retry * 1000)).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------- routes


def _json(build: Callable[[dict[str, Any], Controls, MockOptions], Reply]) -> _Handler:
    def handle(app: MockProvider, request: MockRequest) -> Reply:
        return build(request.json(), request.controls, app.options)

    return handle


def _transcription(app: MockProvider, request: MockRequest) -> Reply:
    return openai_media.audio_transcription(request.form(), request.controls, app.options)


def _count_tokens(app: MockProvider, request: MockRequest) -> Reply:
    return anthropic_api.count_message_tokens(request.json())


def _models(app: MockProvider, request: MockRequest) -> Reply:
    return openai_api.list_models()


def _model(app: MockProvider, request: MockRequest) -> Reply:
    return openai_api.retrieve_model(request.param)


def _upload_file(app: MockProvider, request: MockRequest) -> Reply:
    form = request.form()
    data = form.get("file")
    purpose = form.get("purpose")
    if not isinstance(data, bytes):
        raise MockHTTPError(400, "you must upload a file", param="file")
    if not isinstance(purpose, str) or not purpose:
        raise MockHTTPError(400, "purpose is required", param="purpose")
    filename = form.get("file.filename")
    stored = app.files.add(filename if isinstance(filename, str) else "upload", purpose, data)
    return json_reply(stored.to_json())


def _list_files(app: MockProvider, request: MockRequest) -> Reply:
    files = app.files.list(request.query_param("purpose"))
    return json_reply({"object": "list", "data": [f.to_json() for f in files], "has_more": False})


def _get_file(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.files.get(request.param).to_json())


def _delete_file(app: MockProvider, request: MockRequest) -> Reply:
    app.files.delete(request.param)
    return json_reply({"id": request.param, "object": "file", "deleted": True})


def _file_content(app: MockProvider, request: MockRequest) -> Reply:
    return Reply(app.files.get(request.param).data, content_type=b"application/octet-stream")


def _create_batch(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.batches.create(request.json(), request.controls))


def _get_batch(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.batches.retrieve(request.param))


def _cancel_batch(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.batches.cancel(request.param))


def _list_batches(app: MockProvider, request: MockRequest) -> Reply:
    limit = request.query_param("limit")
    try:
        size = int(limit) if limit else 20
    except ValueError:
        raise MockHTTPError(400, "limit must be an integer", param="limit") from None
    return json_reply(app.batches.list(max(1, min(size, 100)), request.query_param("after")))


def _create_message_batch(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.message_batches.create(request.json(), request.controls, request.base_url))


def _list_message_batches(app: MockProvider, request: MockRequest) -> Reply:
    limit = request.query_param("limit")
    size = int(limit) if limit and limit.isdigit() else 20
    return json_reply(app.message_batches.list(max(1, min(size, 1000)), request.base_url))


def _get_message_batch(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.message_batches.retrieve(request.param, request.base_url))


def _cancel_message_batch(app: MockProvider, request: MockRequest) -> Reply:
    return json_reply(app.message_batches.cancel(request.param, request.base_url))


def _message_batch_results(app: MockProvider, request: MockRequest) -> Reply:
    return Reply(app.message_batches.results(request.param), content_type=b"application/binary")


_EXACT: dict[str, dict[str, _Handler]] = {
    "/chat/completions": {"POST": _json(openai_api.chat_completion)},
    "/completions": {"POST": _json(openai_api.completion)},
    "/embeddings": {"POST": _json(openai_media.embeddings)},
    "/responses": {"POST": _json(openai_responses.response)},
    "/images/generations": {"POST": _json(openai_media.image_generation)},
    "/audio/transcriptions": {"POST": _transcription},
    "/audio/translations": {"POST": _transcription},
    "/audio/speech": {"POST": _json(openai_media.audio_speech)},
    "/models": {"GET": _models},
    "/messages": {"POST": _json(anthropic_api.message)},
    "/messages/count_tokens": {"POST": _count_tokens},
    "/messages/batches": {"POST": _create_message_batch, "GET": _list_message_batches},
    "/files": {"POST": _upload_file, "GET": _list_files},
    "/batches": {"POST": _create_batch, "GET": _list_batches},
}
_WITH_ID: dict[tuple[str, str], dict[str, _Handler]] = {
    ("files", ""): {"GET": _get_file, "DELETE": _delete_file},
    ("files", "content"): {"GET": _file_content},
    ("batches", ""): {"GET": _get_batch},
    ("batches", "cancel"): {"POST": _cancel_batch},
}
_MESSAGE_BATCH: dict[str, dict[str, _Handler]] = {
    "": {"GET": _get_message_batch},
    "results": {"GET": _message_batch_results},
    "cancel": {"POST": _cancel_message_batch},
}


def _resolve(method: str, route: str) -> tuple[_Handler | None, str, str]:
    """(handler or None, route template for the stats, path parameter)."""
    methods = _EXACT.get(route)
    if methods is not None:
        return methods.get(method), route, ""
    parts = route.split("/")
    if route.startswith("/messages/batches/") and len(parts) in (4, 5) and parts[3]:
        tail = parts[4] if len(parts) == 5 else ""
        methods = _MESSAGE_BATCH.get(tail)
        if methods is not None:
            return methods.get(method), "/messages/batches/{id}" + (f"/{tail}" if tail else ""), parts[3]
    if len(parts) >= 3 and parts[1] == "models":
        return (_model if method == "GET" else None), "/models/{id}", "/".join(parts[2:])
    if len(parts) in (3, 4) and parts[2]:
        tail = parts[3] if len(parts) == 4 else ""
        methods = _WITH_ID.get((parts[1], tail))
        if methods is not None:
            template = f"/{parts[1]}/{{id}}" + (f"/{tail}" if tail else "")
            return methods.get(method), template, parts[2]
    return None, "/404", ""


def create_app(options: MockOptions | None = None) -> MockProvider:
    """A new mock provider app."""
    return MockProvider(options)


OPTIONS_ENV = "SPENDGATE_MOCK_OPTIONS"


def app_from_environment() -> MockProvider:
    """An app whose options come from ``$SPENDGATE_MOCK_OPTIONS`` (JSON): the factory that
    ``spendgate mock-provider --workers N`` gives each uvicorn worker process."""
    import os

    raw = os.environ.get(OPTIONS_ENV)
    return MockProvider(MockOptions(**orjson.loads(raw)) if raw else None)

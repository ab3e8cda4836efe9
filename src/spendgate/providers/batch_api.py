"""A deployment's files and batches APIs, called through the gateway's upstream client.

The gateway's batch routes and the batch-cost poller need the provider's own batch objects:
upload an input file, create a batch, poll it, stream its output and error files, cancel it.
:class:`BatchUpstream` makes those calls for one deployment (a :class:`~.base.Target`) through
the same pooled :class:`~.http.UpstreamClient` as live calls, with the deployment's
connection settings:

* ``openai`` (any OpenAI-compatible base URL): ``{base_url}/files``, ``{base_url}/batches``
  … with ``Authorization: Bearer`` (``base_url`` as in :func:`~.openai_compat.openai_base_url`);
* ``azure``: ``{api_base}/openai/files?api-version=…``, ``{api_base}/openai/batches…``
  (files and batches belong to the resource, not to one deployment) with an ``api-key`` header;
* ``anthropic``: ``{api_base}/v1/messages/batches…`` with ``x-api-key`` and
  ``anthropic-version``.

Every method returns the provider's JSON object as it came (ids are not rewritten: mapping
them to the ids a client sees is the gateway's job). Failures are those of a live call: the
HTTP client's exceptions mapped by :func:`~.transport.upstream_errors` (timeouts, refused
connections, cut bodies), an answer of status >= 400 raised as
:class:`~spendgate.errors.UpstreamStatusError` with the provider's body, and a 2xx answer that
is not a JSON object as :class:`~spendgate.errors.UpstreamError`. A method of the other
protocol family (a message batch on an OpenAI deployment …) raises
:class:`~spendgate.errors.ConfigurationError` before anything is sent.

File contents and message-batch results are streamed (an output file can be 200 MB) as a
:class:`ContentStream`, which follows the rule of :mod:`.http` (whoever holds the response
releases it): iterating it to its end releases the connection to the pool; closing it early
(``aclose()``, leaving ``async with``, an error or a cancellation while reading) closes the
connection, so a half-read answer never reaches the next request. Use it as::

    async with upstream.file_content(file_id) as chunks:  # a 404 raises here
        async for chunk in chunks:
            ...

The multipart body of an upload is encoded by httpx (the encoder the official ``openai``
SDK uses), not by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from spendgate.errors import ConfigurationError, UpstreamError, UpstreamStatusError
from spendgate.providers.anthropic import ANTHROPIC_VERSION
from spendgate.providers.base import Target
from spendgate.providers.http import UpstreamClient, UpstreamRequest, UpstreamResponse
from spendgate.providers.openai_compat import openai_base_url
from spendgate.providers.transport import upstream_errors

__all__ = ["BatchUpstream", "ContentStream"]

_OPENAI_KINDS = frozenset({"openai", "azure"})


def _segment(value: str) -> str:
    """An id as one path segment (``/`` and ``..`` cannot reach another resource)."""
    if not value or value in (".", ".."):
        raise ValueError(f"not a valid object id: {value!r}")
    return quote(value, safe="")


class ContentStream:
    """The body of one streamed answer (a file's content, a batch's results), chunk by chunk.

    The request is sent when the stream is entered (``async with``) or first iterated; an
    answer of status >= 400 raises :class:`~spendgate.errors.UpstreamStatusError` then. After
    that :attr:`status_code` and :attr:`headers` (lower-case names) describe the answer.
    Reading to the end releases the connection to the pool; :meth:`aclose` (idempotent)
    before that closes it.
    """

    __slots__ = ("_chunks", "_closed", "_request", "_response", "_upstream", "headers", "status_code")

    def __init__(self, upstream: BatchUpstream, request: UpstreamRequest) -> None:
        self._upstream = upstream
        self._request = request
        self._response: UpstreamResponse | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._closed = False
        self.status_code = 0
        self.headers: dict[str, str] = {}

    async def open(self) -> ContentStream:
        """Send the request (once) and check the answer's status."""
        if self._closed:
            raise RuntimeError("the content stream is closed")
        if self._response is None:
            try:
                response = await self._upstream._send(self._request)
            except BaseException:
                self._closed = True  # an error answer (already read and released) ends the stream
                raise
            self._response = response
            self.status_code = response.status_code
            self.headers = response.headers
            self._chunks = response.aiter_bytes()
        return self

    async def __aenter__(self) -> ContentStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ContentStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            await self.open()
            assert self._chunks is not None
            with upstream_errors(self._upstream.where):
                while True:
                    chunk = await anext(self._chunks)
                    if chunk:
                        return chunk
        except StopAsyncIteration:
            await self.aclose()  # read to its end: the connection goes back to the pool
            raise
        except BaseException:
            await self.aclose()  # failed or cancelled half-way: the connection is closed
            raise

    async def aclose(self) -> None:
        """Idempotent: the connection back to the pool if the body was read to its end, else closed."""
        if self._closed:
            return
        self._closed = True
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        try:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            if response is not None:
                await response.aclose()


class BatchUpstream:
    """One deployment's files, batches and message batches APIs (see the module docstring).

    Args:
        client: the gateway's upstream client (shared, pooled).
        target: the deployment's connection settings; ``kind`` decides the protocol.
        where: names the deployment in error messages (the deployment id); by default
            ``provider:model``.
        headers: extra headers sent with every call (e.g. ``OpenAI-Organization``).
    """

    def __init__(
        self,
        client: UpstreamClient,
        target: Target,
        *,
        where: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.where = where or f"{target.provider}:{target.model}"
        self._headers = {name.lower(): value for name, value in (headers or {}).items()}

    # -- OpenAI-compatible and Azure files ---------------------------------------------------

    async def upload_file(
        self,
        filename: str,
        data: bytes,
        purpose: str = "batch",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``POST /files`` (multipart/form-data): the provider's file object."""
        url = self._openai_url("/files")
        form = httpx.Request("POST", url, data={"purpose": purpose}, files={"file": (filename, data)})
        content = form.read()
        request = self._openai_request("POST", url, headers, content, form.headers["content-type"])
        return await self._json(request)

    async def retrieve_file(
        self, file_id: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET /files/{id}``: the provider's file object."""
        url = self._openai_url(f"/files/{_segment(file_id)}")
        return await self._json(self._openai_request("GET", url, headers))

    async def delete_file(self, file_id: str, *, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``DELETE /files/{id}``: the provider's deletion status."""
        url = self._openai_url(f"/files/{_segment(file_id)}")
        return await self._json(self._openai_request("DELETE", url, headers))

    def file_content(self, file_id: str, *, headers: Mapping[str, str] | None = None) -> ContentStream:
        """``GET /files/{id}/content``, streamed (see :class:`ContentStream`)."""
        url = self._openai_url(f"/files/{_segment(file_id)}/content")
        return ContentStream(self, self._openai_request("GET", url, headers))

    # -- OpenAI-compatible and Azure batches -------------------------------------------------

    async def create_batch(
        self,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``POST /batches``: the provider's batch object."""
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
        }
        if metadata is not None:
            body["metadata"] = dict(metadata)
        url = self._openai_url("/batches")
        request = self._openai_request("POST", url, headers, orjson.dumps(body), "application/json")
        return await self._json(request)

    async def retrieve_batch(
        self, batch_id: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET /batches/{id}``: the provider's batch object."""
        url = self._openai_url(f"/batches/{_segment(batch_id)}")
        return await self._json(self._openai_request("GET", url, headers))

    async def cancel_batch(
        self, batch_id: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /batches/{id}/cancel``: the provider's batch object (``cancelling``)."""
        url = self._openai_url(f"/batches/{_segment(batch_id)}/cancel")
        return await self._json(self._openai_request("POST", url, headers))

    # -- Anthropic message batches -----------------------------------------------------------

    async def create_message_batch(
        self, requests: list[Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/messages/batches`` with ``{"requests": requests}``: the batch object."""
        body = orjson.dumps({"requests": requests})
        request = self._anthropic_request("POST", self._anthropic_url(""), headers, body)
        return await self._json(request)

    async def retrieve_message_batch(
        self, batch_id: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET /v1/messages/batches/{id}``: the batch object."""
        url = self._anthropic_url(f"/{_segment(batch_id)}")
        return await self._json(self._anthropic_request("GET", url, headers))

    async def cancel_message_batch(
        self, batch_id: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/messages/batches/{id}/cancel``: the batch object (``canceling``)."""
        url = self._anthropic_url(f"/{_segment(batch_id)}/cancel")
        return await self._json(self._anthropic_request("POST", url, headers))

    def message_batch_results(
        self,
        batch_id: str,
        results_url: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> ContentStream:
        """The results (JSONL), streamed (see :class:`ContentStream`).

        ``results_url`` is the batch object's; it is used only when it is on the deployment's
        own origin (scheme, host, port), so the API key never goes to another host; otherwise,
        and without one, ``/v1/messages/batches/{id}/results`` on the deployment's base.
        """
        own = self._anthropic_url(f"/{_segment(batch_id)}/results")
        url = results_url if results_url and _origin(results_url) == _origin(own) else own
        return ContentStream(self, self._anthropic_request("GET", url, headers))

    # -- requests ----------------------------------------------------------------------------

    def _openai_url(self, path: str) -> str:
        target = self.target
        if target.kind not in _OPENAI_KINDS:
            raise ConfigurationError(
                f"{self.where}: a {target.kind!r} deployment has no OpenAI files and batches API"
            )
        if target.kind == "azure":
            url = f"{target.api_base.rstrip('/')}/openai{path}"
            if target.api_version:
                url += f"?api-version={quote(target.api_version, safe='')}"
            return url
        return openai_base_url(target.api_base) + path

    def _anthropic_url(self, path: str) -> str:
        target = self.target
        if target.kind != "anthropic":
            raise ConfigurationError(f"{self.where}: a {target.kind!r} deployment has no message batches API")
        return target.api_base.rstrip("/").removesuffix("/v1") + "/v1/messages/batches" + path

    def _openai_request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes = b"",
        content_type: str | None = None,
    ) -> UpstreamRequest:
        merged = self._merged(headers, content_type)
        key = self.target.api_key
        if key:
            if self.target.kind == "azure":
                merged["api-key"] = key
            else:
                merged["authorization"] = f"Bearer {key}"
        return self._request(method, url, merged, content)

    def _anthropic_request(
        self, method: str, url: str, headers: Mapping[str, str] | None, content: bytes = b""
    ) -> UpstreamRequest:
        merged = self._merged(headers, "application/json" if content else None)
        merged.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if self.target.api_key:
            merged["x-api-key"] = self.target.api_key
        return self._request(method, url, merged, content)

    def _merged(self, headers: Mapping[str, str] | None, content_type: str | None) -> dict[str, str]:
        merged = dict(self._headers)
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
        if content_type is not None:
            merged["content-type"] = content_type
        return merged

    def _request(self, method: str, url: str, headers: dict[str, str], content: bytes) -> UpstreamRequest:
        timeout = self.target.timeout
        return UpstreamRequest(method, url, headers, content, timeout, min(timeout, 10.0))

    async def _send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send one request; the response when its status is < 400 (the caller owns it)."""
        with upstream_errors(self.where):
            response = await self.client.send(request)
            if response.status_code >= 400:
                body = await response.aread()  # read to the end: the connection is pooled again
                raise UpstreamStatusError(
                    response.status_code, body, {"retry-after": response.headers.get("retry-after", "")}
                )
            return response

    async def _json(self, request: UpstreamRequest) -> dict[str, Any]:
        response = await self._send(request)
        with upstream_errors(self.where):
            body = await response.aread()
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamError(
                f"{self.where}: {request.method} {urlsplit(request.url).path} answered "
                f"{response.status_code} with a body that is not a JSON object"
            )
        return parsed


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port

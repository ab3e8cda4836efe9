"""OpenAI, Azure OpenAI and any OpenAI-compatible server (vLLM, Ollama, Groq, Together …).

* OpenAI-compatible: ``{api_base}{path}`` with ``Authorization: Bearer``. ``api_base`` is
  what the OpenAI SDK calls ``base_url`` (``https://api.openai.com/v1``); a base URL with
  no path at all (``http://127.0.0.1:8090``) gets ``/v1``.
* Azure OpenAI: ``{api_base}/openai/deployments/{deployment}{path}?api-version=…`` with
  an ``api-key`` header; the deployment is the part of ``azure/<deployment>`` after the slash.

Streams of chat and legacy completions always ask the upstream for usage
(``stream_options.include_usage``). The usage chunk is then priced: a client that asked
for usage gets it with ``usage.cost`` (USD) added; a client that did not ask never sees it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from spendgate.core.usage import (
    OpenAIResponsesStreamAccumulator,
    OpenAIStreamAccumulator,
    from_openai_chat,
    from_openai_completion,
    from_openai_embedding,
    from_openai_image,
    from_openai_responses,
    from_openai_speech,
    from_openai_transcription,
)
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import reported_service_tier
from spendgate.errors import UsageError
from spendgate.providers.base import (
    ClientCall,
    Exchange,
    PassthroughStream,
    Pricer,
    SSESplitter,
    StreamTranslator,
    estimate_prompt_tokens,
    sse_data,
    sse_event,
)
from spendgate.providers.http import UpstreamRequest
from spendgate.providers.multipart import replace_form_field

__all__ = ["PATHS", "OpenAIExchange", "openai_base_url"]

PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
    "images": "/images/generations",
    "transcriptions": "/audio/transcriptions",
    "speech": "/audio/speech",
}

_STREAM_USAGE_ENDPOINTS = frozenset({"chat", "completions"})


def openai_base_url(api_base: str) -> str:
    """The OpenAI SDK's ``base_url`` for an ``api_base``: ``/v1`` added when it has no path."""
    base = api_base.rstrip("/")
    return base if urlsplit(base).path else base + "/v1"


class OpenAIExchange(Exchange):
    """A call to an OpenAI-compatible or Azure OpenAI deployment (body passed through)."""

    def build_request(self) -> UpstreamRequest:
        call, target = self.call, self.target
        path = PATHS[call.endpoint]
        headers = dict(call.forward_headers)
        if target.kind == "azure":
            url = f"{target.api_base.rstrip('/')}/openai/deployments/{quote(target.model, safe='')}{path}"
            if target.api_version:
                url += f"?api-version={quote(target.api_version, safe='')}"
            if target.api_key:
                headers["api-key"] = target.api_key
        else:
            url = openai_base_url(target.api_base) + path
            if target.api_key:
                headers["authorization"] = f"Bearer {target.api_key}"
        if call.content_type.startswith("multipart/"):
            headers["content-type"] = call.content_type
            content = replace_form_field(call.raw, call.content_type, "model", target.model)
        else:
            body = dict(call.payload)
            body["model"] = target.model
            if call.stream and call.endpoint in _STREAM_USAGE_ENDPOINTS:
                options = body.get("stream_options")
                body["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
            headers["content-type"] = "application/json"
            content = orjson.dumps(body)
        read, connect = self._timeouts()
        return UpstreamRequest("POST", url, headers, content, read, connect)

    def read_response(self, body: bytes, content_type: str) -> tuple[Usage | None, bytes, str]:
        call = self.call
        if call.endpoint == "speech":
            text = call.payload.get("input")
            return (from_openai_speech(text) if isinstance(text, str) else None), body, content_type
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, body, content_type  # e.g. a transcription as plain text
        self.answer = parsed
        self.service_tier = reported_service_tier(parsed)
        try:
            return _extract(call, parsed), body, content_type
        except UsageError:
            return None, body, content_type

    def estimate(self, generated_text: str = "") -> Usage:
        call = self.call
        if call.endpoint == "speech":
            text = call.payload.get("input")
            return from_openai_speech(text if isinstance(text, str) else "")
        if call.endpoint == "images":
            n = call.payload.get("n")
            return Usage(
                images=n if isinstance(n, int) and n > 0 else 1,
                image_size=_str(call.payload.get("size")),
                image_quality=_str(call.payload.get("quality")),
            )
        if call.endpoint == "transcriptions":
            return Usage()
        usage = super().estimate(generated_text)
        if call.endpoint == "embeddings":
            return Usage(input_tokens=estimate_prompt_tokens(call.payload, call.endpoint))
        return usage

    def stream_translator(self, pricer: Pricer) -> StreamTranslator:
        if self.call.endpoint == "responses":
            return ResponsesStreamPassthrough(pricer)
        return ChatStreamRelay(pricer, include_usage=self.call.include_usage)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _extract(call: ClientCall, parsed: Any) -> Usage:
    endpoint = call.endpoint
    if endpoint == "chat":
        return from_openai_chat(parsed)
    if endpoint == "completions":
        return from_openai_completion(parsed)
    if endpoint == "embeddings":
        return from_openai_embedding(parsed)
    if endpoint == "responses":
        return from_openai_responses(parsed)
    if endpoint == "images":
        n = call.payload.get("n")
        return from_openai_image(
            parsed,
            n=n if isinstance(n, int) else None,
            size=_str(call.payload.get("size")),
            quality=_str(call.payload.get("quality")),
        )
    if endpoint == "transcriptions":
        return from_openai_transcription(parsed)
    raise UsageError(f"no usage extractor for {endpoint}")


class ChatStreamRelay(StreamTranslator):
    """Chat and legacy completion chunks: passed through, the usage chunk priced and
    shown (with ``usage.cost``) or withheld, as the client asked."""

    def __init__(self, pricer: Pricer, *, include_usage: bool) -> None:
        super().__init__(pricer)
        self.include_usage = include_usage
        self._acc = OpenAIStreamAccumulator()
        self._split = SSESplitter()

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._relay(event) for event in self._split.feed(data))

    def close(self) -> bytes:
        return b"".join(self._relay(event) for event in self._split.close())

    def _relay(self, event: bytes) -> bytes:
        data = sse_data(event)
        if data is None:
            return event
        if data.strip() == b"[DONE]":
            self.finished = True
            return event
        try:
            chunk = orjson.loads(data)
            self._acc.add(chunk)
        except (orjson.JSONDecodeError, UsageError):
            return event
        if not isinstance(chunk, dict) or not chunk.get("usage"):
            return event
        usage = self.usage()
        breakdown = self.price(usage) if usage is not None else None
        if self.include_usage:
            if breakdown is not None and breakdown.priced:
                chunk["usage"]["cost"] = float(breakdown.total)
            return sse_event(chunk)
        if chunk.get("choices"):
            chunk["usage"] = None
            return sse_event(chunk)
        return b""

    def usage(self) -> Usage | None:
        try:
            return self._acc.usage()
        except UsageError:
            return None

    @property
    def text(self) -> str:
        return self._acc.text

    @property
    def service_tier(self) -> str | None:
        return self._acc.service_tier

    def error_event(self, message: str) -> bytes:
        return sse_event(
            {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}
        )


class ResponsesStreamPassthrough(PassthroughStream):
    """Responses API events, passed through unchanged; usage from the terminal event."""

    def __init__(self, pricer: Pricer) -> None:
        super().__init__(pricer, OpenAIResponsesStreamAccumulator())

    def _finishes(self, parsed: Any) -> bool:
        return self._acc.saw_usage  # the terminal event carries the usage

    def _final_usage(self, parsed: dict[str, Any]) -> dict[str, Any] | None:
        if parsed.get("type") not in ("response.completed", "response.incomplete", "response.failed"):
            return None
        response = parsed.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
        return usage if isinstance(usage, dict) else None

    def error_event(self, message: str) -> bytes:
        return sse_event(
            {"type": "error", "code": "upstream_error", "message": message, "param": None}, event="error"
        )

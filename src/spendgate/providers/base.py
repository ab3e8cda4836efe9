"""What the gateway asks of an upstream adapter.

A :class:`ClientCall` is one request as the client sent it (parsed once). An adapter
turns it, for one :class:`Target` (a deployment's connection settings), into an
:class:`Exchange`: the ``httpx.Request`` to send, how to read usage from the answer,
how to translate the answer back for the client, and, for streams, a
:class:`StreamTranslator` that rewrites upstream SSE bytes into the client's dialect
while accumulating usage.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage
from spendgate.errors import UsageError
from spendgate.providers.http import UpstreamRequest

__all__ = [
    "ENDPOINT_PATHS",
    "ClientCall",
    "Exchange",
    "PassthroughStream",
    "Pricer",
    "SSESplitter",
    "StreamTranslator",
    "Target",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "sse_data",
]


ENDPOINT_PATHS: dict[str, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "images": "/v1/images/generations",
    "transcriptions": "/v1/audio/transcriptions",
    "speech": "/v1/audio/speech",
    "messages": "/v1/messages",
}
"""Each priced endpoint (:attr:`ClientCall.endpoint`) → its canonical path: what the ledger
records as a call's ``endpoint`` whichever route (with or without ``/v1``) or client (the
gateway, the SDK) made it, so spend grouped by endpoint has one row per endpoint."""


class Pricer(Protocol):
    """Prices a usage at the deployment that served it, at the service tier the answer
    reported (``served_tier``; None when it did not say); used to put ``usage.cost`` in
    streams."""

    def __call__(self, usage: Usage, *, served_tier: str | None = None) -> CostBreakdown: ...


@dataclass(frozen=True, slots=True)
class Target:
    """How to reach one deployment."""

    kind: str
    """The wire protocol: ``openai`` (any OpenAI-compatible base URL), ``azure`` or ``anthropic``."""
    provider: str
    """The provider, for pricing and the ledger: ``openai``, ``azure``, ``anthropic``, ``groq`` …"""
    model: str
    """The model (Azure: the deployment name) sent upstream."""
    api_base: str
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    timeout: float = 600.0
    stream_timeout: float | None = None


@dataclass(slots=True)
class ClientCall:
    """One client request, parsed once."""

    endpoint: str
    """``chat``, ``completions``, ``embeddings``, ``responses``, ``images``, ``transcriptions``,
    ``speech`` or ``messages`` (Anthropic)."""
    model: str
    payload: dict[str, Any]
    """The JSON body (for multipart: the text fields)."""
    raw: bytes = b""
    content_type: str = "application/json"
    stream: bool = False
    include_usage: bool = False
    """The client asked for usage in the stream (``stream_options.include_usage``)."""
    forward_headers: Mapping[str, str] = field(default_factory=dict)


class StreamTranslator(ABC):
    """Rewrites an upstream SSE stream for the client and accumulates its usage."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer
        self.breakdown: CostBreakdown | None = None
        """The price of the final usage, once the usage chunk has been seen."""
        self.finished = False
        """The upstream ended its stream properly (``[DONE]``, ``message_stop``, terminal event)."""

    @property
    def service_tier(self) -> str | None:
        """The service tier the stream says served it (normalized), or None."""
        return None

    @abstractmethod
    def feed(self, data: bytes) -> bytes:
        """Upstream bytes in (split anywhere), bytes for the client out (may be empty)."""

    def close(self) -> bytes:
        """The upstream body ended: anything still to send."""
        return b""

    @abstractmethod
    def usage(self) -> Usage | None:
        """The usage the upstream reported, or None."""

    @property
    @abstractmethod
    def text(self) -> str:
        """The generated text so far (for an estimate)."""

    @abstractmethod
    def error_event(self, message: str) -> bytes:
        """An SSE event telling the client the upstream failed mid-stream."""

    def price(self, usage: Usage) -> CostBreakdown:
        self.breakdown = self.pricer(usage, served_tier=self.service_tier)
        return self.breakdown


class _Accumulator(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def saw_usage(self) -> bool: ...
    @property
    def service_tier(self) -> str | None: ...

    def add(self, chunk: Any) -> None: ...
    def usage(self) -> Usage | None: ...


class PassthroughStream(StreamTranslator):
    """Upstream SSE events passed to the client unchanged while an accumulator meters them;
    only the event that carries the final usage gets its cost added (``usage.cost``, USD).

    Subclasses say when the upstream has finished (:meth:`_finishes`), which event carries
    the final usage (:meth:`_final_usage`) and how an error looks in their dialect
    (:meth:`error_event`).
    """

    def __init__(self, pricer: Pricer, accumulator: _Accumulator) -> None:
        super().__init__(pricer)
        self._acc = accumulator
        self._split = SSESplitter()

    def feed(self, data: bytes) -> bytes:
        return b"".join([self._pass(event) for event in self._split.feed(data)])

    def close(self) -> bytes:
        return b"".join([self._pass(event) for event in self._split.close()])

    def _pass(self, event: bytes) -> bytes:
        parsed = self._event(event)
        holder = None if parsed is None else self._final_usage(parsed)
        if holder is None:
            return event
        usage = self.usage()
        if usage is None:
            return event
        breakdown = self.price(usage)
        if not breakdown.priced:
            return event
        assert parsed is not None
        holder["cost"] = float(breakdown.total)
        return sse_event(parsed, event=sse_name(event))

    def _final_usage(self, parsed: dict[str, Any]) -> dict[str, Any] | None:
        """The ``usage`` object of an event that carries the final usage (it gets the cost)."""
        return None

    def _event(self, event: bytes) -> dict[str, Any] | None:
        """Meter one event; its JSON object, or None for anything else."""
        data = sse_data(event)
        if data is None:
            return None
        try:
            parsed = orjson.loads(data)  # `[DONE]` and other non-JSON data end here
            self._acc.add(parsed)
        except (orjson.JSONDecodeError, UsageError):
            return None
        if not self.finished and self._finishes(parsed):
            self.finished = True
        return parsed if isinstance(parsed, dict) else None

    @abstractmethod
    def _finishes(self, parsed: Any) -> bool:
        """True when this event shows the upstream ended its stream properly."""

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


class Exchange(ABC):
    """One :class:`ClientCall` prepared for one :class:`Target`."""

    def __init__(self, call: ClientCall, target: Target) -> None:
        self.call = call
        self.target = target
        self.service_tier: str | None = None
        """The service tier the (non-streamed) answer says served it, normalized; set by
        :meth:`read_response` (None: it did not say)."""
        self.answer: Any = None
        """The (non-streamed) answer's JSON as :meth:`read_response` parsed it, so a caller
        that wants it too (the SDK's callbacks) does not parse the body again; None when it
        was not parsed (not JSON, or an adapter that does not keep it)."""

    @abstractmethod
    def build_request(self) -> UpstreamRequest:
        """The upstream request."""

    def _timeouts(self) -> tuple[float, float]:
        """(read timeout, connect timeout) of this call on its target."""
        target = self.target
        read = (target.stream_timeout or target.timeout) if self.call.stream else target.timeout
        return read, min(target.timeout, 10.0)

    @abstractmethod
    def read_response(self, body: bytes, content_type: str) -> tuple[Usage | None, bytes, str]:
        """``(usage or None when the answer has none, body for the client, its content type)``;
        also sets :attr:`service_tier`."""

    @abstractmethod
    def stream_translator(self, pricer: Pricer) -> StreamTranslator:
        """A translator for a streamed answer."""

    def estimate(self, generated_text: str = "") -> Usage:
        """A usage estimate: the prompt estimated from the request, the output from text."""
        return Usage(
            input_tokens=estimate_prompt_tokens(self.call.payload, self.call.endpoint),
            output_tokens=estimate_text_tokens(generated_text),
        )


def estimate_text_tokens(text: str) -> int:
    """A tokenizer-free estimate: about four characters per token, rounded up."""
    return math.ceil(len(text) / 4) if text else 0


def estimate_prompt_tokens(payload: Mapping[str, Any], endpoint: str | None = None) -> int:
    """Estimate the prompt tokens of a request, never below what a client can make it cost:
    text (messages, system, input, prompt) at four characters a token, plus four tokens of
    framing per message; a pre-tokenized prompt (token ids) at one token an id. A list of
    prompts or inputs sums its items, each rounded up on its own. ``endpoint`` (``responses``,
    ``embeddings`` …) tells a Responses ``input`` string, one user message with its framing,
    from an embeddings input, which has none."""
    total = 4 if endpoint == "responses" and isinstance(payload.get("input"), str) else 0
    messages = payload.get("messages")
    if isinstance(messages, list):
        for message in messages:
            total += 4 + estimate_text_tokens(
                _text_of(message.get("content") if isinstance(message, dict) else message)
            )
    for key in ("system", "instructions"):  # one more message
        if payload.get(key):
            total += 4 + estimate_text_tokens(_text_of(payload[key]))
    for key in ("input", "prompt"):
        if key in payload:
            total += _input_tokens(payload[key])
    return total


_MAX_DEPTH = 32
"""Deeper nesting than any API accepts is not read (and cannot exhaust the stack)."""


def _input_tokens(value: object, depth: int = 0) -> int:
    """A completions prompt, an embeddings input or a Responses input: a string at four
    characters a token, a token id as one token, a message item as a message, a list as
    the sum of its items."""
    if isinstance(value, str):
        return estimate_text_tokens(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return 1
    if isinstance(value, list) and depth < _MAX_DEPTH:
        return sum(_input_tokens(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return 4 + estimate_text_tokens(_text_of(value))
    return 0


def _text_of(value: object, depth: int = 0) -> str:
    if isinstance(value, str):
        return value
    if depth >= _MAX_DEPTH:
        return ""
    if isinstance(value, list):
        return " ".join(_text_of(v, depth + 1) for v in value)
    if isinstance(value, dict):
        for key in ("text", "content", "input_text"):
            if key in value:
                return _text_of(value[key], depth + 1)
        return ""
    return ""


class SSESplitter:
    """Splits a byte stream into complete server-sent events (each ending in a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        parts = buffer.split(b"\n\n")
        self._buffer = parts.pop()
        return [p + b"\n\n" for p in parts if p.strip()]

    def close(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest.rstrip(b"\n") + b"\n\n"] if rest.strip() else []


def sse_data(event: bytes) -> bytes | None:
    """The ``data`` of one event (its data lines joined), or None when it has none."""
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines)


def sse_name(event: bytes) -> str | None:
    """The ``event:`` name of one event, or None."""
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return None


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One SSE event carrying ``data`` as JSON."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"

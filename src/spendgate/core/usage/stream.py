"""Stream accumulators: the usage of a streamed call, assembled chunk by chunk.

Feed each chunk, as it passes through, to an accumulator, then ask for its usage::

    acc = OpenAIStreamAccumulator()
    for chunk in stream:          # SDK objects, parsed dicts, or JSON text
        acc.add(chunk)
    # or, on raw upstream bytes, split anywhere:  acc.feed_sse(body_bytes)
    usage = acc.usage()           # None when the stream carried no usage

A streamed call's final :class:`Usage` equals the usage of the same call unstreamed.
When the stream ends without usage (the client disconnected, or the upstream does not
report it), ``usage()`` is None and :attr:`~_Accumulator.text` holds the generated text
(content, reasoning, refusals and tool-call arguments) for an estimate. ``complete``
tells whether the usage seen is final: Anthropic reports input tokens at the start of the
message and the final output count only at its end.

* :class:`OpenAIStreamAccumulator`: chat completions and legacy completions chunks. Usage
  arrives in the last chunk when ``stream_options.include_usage`` is set (Groq: in
  ``x_groq.usage``); a later usage replaces an earlier one.
* :class:`OpenAIResponsesStreamAccumulator`: Responses API events; the terminal
  ``response.completed`` / ``response.incomplete`` / ``response.failed`` event carries
  the whole response with its usage.
* :class:`AnthropicStreamAccumulator`: Messages events; ``message_start`` carries input
  and cache counts, ``message_delta`` the cumulative output count (and, in newer APIs,
  input, cache and server-tool counts): the latest non-null value of each field wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from spendgate.core.usage._access import dig, get, items, text
from spendgate.core.usage.anthropic import anthropic_usage
from spendgate.core.usage.model import Usage, UsageError
from spendgate.core.usage.openai import chat_usage, has_url_citation, responses_usage
from spendgate.core.usage.tier import reported_service_tier

__all__ = ["AnthropicStreamAccumulator", "OpenAIResponsesStreamAccumulator", "OpenAIStreamAccumulator"]


class _SSEDecoder:
    """Incremental decoder of the ``data:`` payloads of a server-sent-event stream.

    Bytes may be split anywhere. Lines end with ``\\n`` or ``\\r\\n``; comments
    (``:``) and fields other than ``data`` (``event:``, ``id:``) are skipped. A data
    line is dispatched as soon as it is complete JSON, so a stream cut before the blank
    line that ends its last event loses nothing; data spread over several lines of one
    event is joined with ``\\n``, as the SSE spec says. ``[DONE]`` is ignored.
    """

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []

    def feed(self, chunk: bytes | bytearray | str) -> tuple[list[object], str | None]:
        """The events completed by ``chunk``, and an error for any malformed one."""
        data = chunk.encode() if isinstance(chunk, str) else chunk
        events: list[object] = []
        error: str | None = None
        start = len(self._buffer)
        self._buffer += data
        end = self._buffer.find(b"\n", start)
        begin = 0
        while end != -1:
            line = bytes(self._buffer[begin:end])
            begin = end + 1
            end = self._buffer.find(b"\n", begin)
            error = self._line(line.removesuffix(b"\r"), events) or error
        del self._buffer[:begin]
        return events, error

    def close(self) -> tuple[list[object], str | None]:
        """End of the stream: the event on a last line that has no line ending, if any."""
        events: list[object] = []
        error: str | None = None
        if self._buffer:
            line, self._buffer = bytes(self._buffer), bytearray()
            error = self._line(line.removesuffix(b"\r"), events)
        return events, self._line(b"", events) or error

    def _line(self, line: bytes, events: list[object]) -> str | None:
        if not line:  # end of event
            if self._data:
                bad, self._data = "\n".join(self._data), []
                return f"stream event data is not JSON: {bad[:200]!r}"
            return None
        name, _, value = line.partition(b":")
        if name != b"data":
            return None
        self._data.append(value.removeprefix(b" ").decode("utf-8", "replace"))
        payload = "\n".join(self._data)
        if payload.strip() == "[DONE]":
            self._data = []
            return None
        try:
            event = json.loads(payload)
        except ValueError:
            return None  # maybe continued on the next data line of this event
        self._data = []
        events.append(event)
        return None


def _parse_chunk(chunk: bytes | bytearray | str) -> object:
    """One chunk given as JSON text, with or without its ``data:`` prefix; None for ``[DONE]``."""
    payload = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes | bytearray) else chunk
    payload = payload.strip()
    if payload.startswith("data:"):
        payload = payload[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    try:
        return json.loads(payload)
    except ValueError:
        raise UsageError(f"stream chunk is not JSON: {payload[:200]!r}") from None


class _Accumulator:
    """What every accumulator shares: input handling, text, model, finish reason."""

    __slots__ = ("_decoder", "_parts", "finish_reason", "id", "model", "service_tier")

    def __init__(self) -> None:
        self._decoder: _SSEDecoder | None = None
        self._parts: list[str] = []
        self.model: str | None = None
        """The model named by the stream (the latest non-empty name)."""
        self.id: str | None = None
        """The upstream's response or message id."""
        self.finish_reason: str | None = None
        """Why generation stopped (``stop``, ``length``, ``end_turn``, ``incomplete`` …)."""
        self.service_tier: str | None = None
        """The service tier the stream says it was served at (the latest said; normalized by
        :func:`~spendgate.core.usage.tier.service_tier_name`), or None."""

    def add(self, chunk: object) -> None:
        """Account one chunk: an SDK object, a parsed dict, or its JSON text (bytes or str)."""
        if isinstance(chunk, bytes | bytearray | str):
            chunk = _parse_chunk(chunk)
            if chunk is None:
                return
        self._on_event(chunk)

    def feed_sse(self, data: bytes | bytearray | str) -> None:
        """Account raw server-sent-event bytes, split at any point.

        Every complete event in ``data`` is accounted; a malformed event then raises
        :class:`UsageError`, and later data can still be fed.
        """
        if self._decoder is None:
            self._decoder = _SSEDecoder()
        events, error = self._decoder.feed(data)
        for event in events:
            self._on_event(event)
        if error is not None:
            raise UsageError(error)

    def close(self) -> None:
        """End of the raw byte stream: account a last line left without a line ending.

        Only needed after :meth:`feed_sse` when the upstream body may end mid-line; every
        complete line is accounted as soon as it arrives.
        """
        if self._decoder is None:
            return
        events, error = self._decoder.close()
        for event in events:
            self._on_event(event)
        if error is not None:
            raise UsageError(error)

    @property
    def text(self) -> str:
        """All generated text so far: content, reasoning, refusals, tool-call arguments."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def saw_usage(self) -> bool:
        """True when the stream carried usage."""
        raise NotImplementedError

    @property
    def complete(self) -> bool:
        """True when the usage seen is the final usage of the call."""
        raise NotImplementedError

    def usage(self) -> Usage | None:
        """The call's usage, or None when the stream carried none."""
        raise NotImplementedError

    def _on_event(self, event: object) -> None:
        raise NotImplementedError

    def _append(self, value: object) -> None:
        if isinstance(value, str) and value:
            self._parts.append(value)

    def _set_model(self, container: object, path: str) -> None:
        model = text(get(container, "model"), f"{path}.model")
        if model:
            self.model = model
        ident = get(container, "id")
        if isinstance(ident, str) and ident:
            self.id = ident
        tier = reported_service_tier(container)
        if tier is not None:
            self.service_tier = tier


class OpenAIStreamAccumulator(_Accumulator):
    """Chat completions (and legacy completions) stream chunks."""

    __slots__ = ("_final", "_url_cited", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._usage: object = None
        self._final = False
        self._url_cited = False

    @property
    def saw_usage(self) -> bool:
        return self._usage is not None

    @property
    def complete(self) -> bool:
        return self._final

    def usage(self) -> Usage | None:
        if self._usage is None:
            return None
        return chat_usage(self._usage, url_cited=self._url_cited)

    def _on_event(self, event: object) -> None:
        self._set_model(event, "chunk")
        for choice in items(get(event, "choices"), "chunk.choices"):
            reason = get(choice, "finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
            self._append(get(choice, "text"))  # legacy completions
            delta = get(choice, "delta")
            if delta is None:
                continue
            reasoning = get(delta, "reasoning_content")  # DeepSeek; others name it "reasoning"
            self._append(reasoning if reasoning is not None else get(delta, "reasoning"))
            self._append(get(delta, "content"))
            self._append(get(delta, "refusal"))
            self._append(dig(delta, "function_call", "arguments"))
            for call in items(get(delta, "tool_calls"), "delta.tool_calls"):
                self._append(dig(call, "function", "name"))
                self._append(dig(call, "function", "arguments"))
            if not self._url_cited and has_url_citation(get(delta, "annotations")):
                self._url_cited = True
        usage = get(event, "usage")
        if usage is None:
            usage = dig(event, "x_groq", "usage")
        if usage is not None:
            self._usage = usage
            self._final = self.finish_reason is not None


_RESPONSES_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.code_interpreter_call_code.delta",
    }
)
_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class OpenAIResponsesStreamAccumulator(_Accumulator):
    """Responses API stream events (``response.*``)."""

    __slots__ = ("_response", "_web_search_items")

    def __init__(self) -> None:
        super().__init__()
        self._response: object = None
        self._web_search_items: list[object] = []

    @property
    def saw_usage(self) -> bool:
        return get(self._response, "usage") is not None

    @property
    def complete(self) -> bool:
        return self.saw_usage

    def usage(self) -> Usage | None:
        usage = get(self._response, "usage")
        if usage is None:
            return None
        output: Sequence[object] = items(get(self._response, "output"), "response.output")
        return responses_usage(usage, output or self._web_search_items)

    def _on_event(self, event: object) -> None:
        kind = get(event, "type")
        response = get(event, "response")
        if response is not None:
            self._set_model(response, "response")
        if kind in _RESPONSES_TEXT_DELTAS:
            self._append(get(event, "delta"))
        elif kind == "response.output_item.done":
            item = get(event, "item")
            if get(item, "type") == "web_search_call":
                self._web_search_items.append(item)
        elif kind in _RESPONSES_TERMINAL and response is not None:
            self._response = response
            reason = dig(response, "incomplete_details", "reason")
            status = get(response, "status")
            final = reason if isinstance(reason, str) else status
            if isinstance(final, str):
                self.finish_reason = final


_ANTHROPIC_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_ANTHROPIC_NESTED = {
    "cache_creation": ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"),
    "server_tool_use": ("web_search_requests",),
}
_ANTHROPIC_DELTA_TEXT = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


class AnthropicStreamAccumulator(_Accumulator):
    """Anthropic Messages stream events (``message_start`` … ``message_stop``)."""

    __slots__ = ("_final", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._usage: dict[str, object] | None = None
        self._final = False

    @property
    def saw_usage(self) -> bool:
        return self._usage is not None

    @property
    def complete(self) -> bool:
        return self._final

    def usage(self) -> Usage | None:
        if self._usage is None:
            return None
        return anthropic_usage(self._usage)

    def _on_event(self, event: object) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            self._set_model(message, "message")
            self._merge(get(message, "usage"))
        elif kind == "message_delta":
            reason = dig(event, "delta", "stop_reason")
            if isinstance(reason, str):
                self.finish_reason = reason
            usage = get(event, "usage")
            self._merge(usage)
            if usage is not None:
                self._final = True
                self._set_model(event, "message_delta")
        elif kind == "content_block_start":
            block = get(event, "content_block")
            self._append(get(block, "text"))
            self._append(get(block, "thinking"))
        elif kind == "content_block_delta":
            delta = get(event, "delta")
            key = _ANTHROPIC_DELTA_TEXT.get(str(get(delta, "type")))
            if key is not None:
                self._append(get(delta, key))

    def _merge(self, usage: object) -> None:
        """Take the latest non-null value of each usage field."""
        if usage is None:
            return
        merged = self._usage if self._usage is not None else {}
        for key in _ANTHROPIC_COUNTS:
            value = get(usage, key)
            if value is not None:
                merged[key] = value
        for key, names in _ANTHROPIC_NESTED.items():
            nested = get(usage, key)
            if nested is None:
                continue
            into = dict(get(merged, key) or {})  # type: ignore[call-overload]
            for name in names:
                value = get(nested, name)
                if value is not None:
                    into[name] = value
            merged[key] = into
        self._usage = merged

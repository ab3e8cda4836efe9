"""A chat (or legacy completions) stream relayed by the gateway's translator, with each
chunk's accounting deferred until something reads it.

The gateway's :class:`~spendgate.providers.openai_compat.ChatStreamRelay` parses every
chunk as it passes and feeds it to a usage accumulator (text, finish reason, service tier,
URL citations). In the SDK most of that is never read: a stream that ends with its usage
chunk, in a process with no callback, needs only that usage and the tier it was served at.
:class:`DeferredChatStream` hands every chunk on as the relay would, and:

* keeps a chunk unparsed when no ``usage`` key in it has a value other than ``null`` (the
  relay hands such a chunk on unchanged: only its accounting is deferred);
* prices the usage chunk with a relay of its own (fresh), which gives the output, usage and
  price the in-order relay gives as long as nothing before it can change the usage or the
  tier: no chunk names ``annotations`` (a URL citation adds a web search), the usage chunk
  reports its own service tier when one before it names one (the latest one said wins),
  and no chunk has a ``\\u`` escape (behind which a key could hide);
* feeds the kept chunks, in order, to the gateway's relay the moment its state is read
  (the text for an estimate or a callback, the usage of a stream that was cut, …) or a
  chunk breaks one of those conditions; from then on every chunk goes through that relay.

So what the caller reads, the usage and the price are always those of the gateway's relay.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage
from spendgate.providers.base import Pricer, SSESplitter, StreamTranslator, sse_data

__all__ = ["DeferredChatStream"]

_NULL_VALUE = re.compile(rb"\s*:\s*null\b")
"""What follows a ``usage`` key whose value is ``null``."""


def _has_usage(event: bytes) -> bool:
    """True when a ``usage`` key in the event has a value other than ``null`` (OpenAI sends
    ``"usage":null`` in every chunk of a stream that asked for usage)."""
    at = event.find(b'"usage"')
    while at >= 0:
        at += 7
        if not event.startswith(b":null", at) and _NULL_VALUE.match(event, at) is None:
            return True
        at = event.find(b'"usage"', at)
    return False


_USAGE_VALUE = re.compile(rb'"usage"(?!:null)')
"""A ``usage`` key not directly followed by ``:null`` (one search: faster than a loop of
``find`` over the ``"usage":null`` of every chunk)."""
_MARKS = (b"[DONE]", b"\\", b'"annotations"')
"""What makes an event need :meth:`DeferredChatStream._event`'s look of its own (besides a
``usage`` key with a value): the end of the stream, a URL citation, and any backslash (the
look is for a ``\\u`` escape; a backslash alone is found by ``memchr``, several times faster
than the pair, whose ``u`` is everywhere in JSON)."""


def _first_mark(events: bytes) -> int:
    """The offset of the first byte in ``events`` (complete events, concatenated) that
    :meth:`DeferredChatStream._event` would not pass as a chunk to keep: one of
    :data:`_MARKS`, or a ``usage`` key not directly followed by ``:null``; -1 when there
    is none. None of them holds a newline, so each lies inside one event: every event that
    ends before the offset is kept as :meth:`DeferredChatStream._event` keeps it (a
    ``"usage" : null`` with spaces is a mark, and gets that look)."""
    found = [at for mark in _MARKS if (at := events.find(mark)) >= 0]
    usage = _USAGE_VALUE.search(events)
    if usage is not None:
        found.append(usage.start())
    return min(found, default=-1)


class DeferredChatStream(StreamTranslator):
    """A chat stream translator whose chunks are accounted only when needed (see the module).

    Args:
        make: a new gateway relay for the call pricing with the given pricer
            (``exchange.stream_translator``).
        pricer: prices a usage at the call's model.
    """

    def __init__(self, make: Callable[[Pricer], StreamTranslator], pricer: Pricer) -> None:
        super().__init__(pricer)
        self._make = make
        self._relay: StreamTranslator | None = None
        """The gateway's relay, fed every chunk in order (late while chunks are kept; made
        when first needed)."""
        self._kept: list[bytes] = []
        self._priced: StreamTranslator | None = None
        """The fresh relay that priced the usage chunk, while the kept chunks are not fed."""
        self._usage: Usage | None = None
        """The usage the usage chunk's relay priced (it is fed nothing more)."""
        self._tier_said = False
        """A kept chunk names a ``service_tier`` (the usage chunk must then name its own)."""
        self._in_order = False
        self._split = SSESplitter()

    def feed(self, data: bytes) -> bytes:
        return self._events(self._split.feed(data))

    def close(self) -> bytes:
        return self._events(self._split.close())

    def _events(self, events: list[bytes]) -> bytes:
        """The events handed on. On the short path, the events before the first one that
        needs a look of its own (see :func:`_first_mark`) are kept in one step, as
        :meth:`_event` keeps each: a stream's text chunks cost one scan of the bytes read,
        not several scans and a call each."""
        if self._in_order or self._priced is not None or not events:
            return b"".join([self._event(event) for event in events])
        whole = b"".join(events)
        cut = _first_mark(whole)
        if cut < 0:
            self._keep(events, whole, len(whole))
            return whole
        kept = end = 0
        for event in events:  # those that end before the mark
            if end + len(event) > cut:
                break
            end += len(event)
            kept += 1
        if not kept:
            return b"".join([self._event(event) for event in events])
        self._keep(events[:kept], whole, end)
        return b"".join([*events[:kept], *[self._event(event) for event in events[kept:]]])

    def _keep(self, events: list[bytes], whole: bytes, end: int) -> None:
        """Keep ``events`` (``whole[:end]``), none of which can change the usage."""
        self._kept.extend(events)
        self._tier_said = self._tier_said or whole.find(b'"service_tier"', 0, end) >= 0

    def _event(self, event: bytes) -> bytes:
        if self._in_order:
            return self._relayed(event)
        if b"[DONE]" in event:
            data = sse_data(event)
            if data is not None and data.strip() == b"[DONE]":
                self.finished = True
                return event  # the relay hands it on and accounts nothing
        if self._priced is None and b"\\u" not in event and b'"annotations"' not in event:
            # it cannot change the usage (see the module)
            if not _has_usage(event):
                self._kept.append(event)  # handed on unchanged by the relay too
                self._tier_said = self._tier_said or b'"service_tier"' in event
                return event
            priced = self._make(self._recording)
            out = priced.feed(event)
            if priced.breakdown is not None and (priced.service_tier is not None or not self._tier_said):
                self._priced, self.breakdown = priced, priced.breakdown
                self._kept.append(event)
                return out
        self._catch_up()
        return self._relayed(event)

    def _recording(self, usage: Usage, *, served_tier: str | None = None) -> CostBreakdown:
        """The pricer of the relay that prices the usage chunk: keeps the usage it priced."""
        self._usage = usage
        return self.pricer(usage, served_tier=served_tier)

    def _gateway_relay(self) -> StreamTranslator:
        if self._relay is None:
            self._relay = self._make(self.pricer)
        return self._relay

    def _relayed(self, event: bytes) -> bytes:
        relay = self._gateway_relay()
        out = relay.feed(event)
        self.finished = self.finished or relay.finished
        self.breakdown = relay.breakdown
        return out

    def _catch_up(self) -> None:
        """Feed the kept chunks to the gateway's relay (their output was handed on already)
        and relay every later chunk in order."""
        if not self._in_order:
            self._in_order = True
            relay = self._gateway_relay()
            for event in self._kept:
                relay.feed(event)
            self._kept.clear()
            self._priced = None
            self.breakdown = relay.breakdown

    def usage(self) -> Usage | None:
        if self._priced is not None:
            return self._usage
        self._catch_up()
        return self._gateway_relay().usage()

    @property
    def text(self) -> str:
        self._catch_up()
        return self._gateway_relay().text

    @property
    def service_tier(self) -> str | None:
        if self._priced is not None:
            return self._priced.service_tier
        self._catch_up()
        return self._gateway_relay().service_tier

    def error_event(self, message: str) -> bytes:
        return self._gateway_relay().error_event(message)

"""``spendgate.cost_of(result)``: the cost of a call, read back from what the SDK returned.

The metered transport prices a call before the SDK parses its answer, and the SDK's parsed
objects keep no link to the HTTP response, so the transport remembers each call's price
in two places:

* on the ``httpx.Response`` it returned (in its ``extensions``, under
  :data:`EXTENSION`): found for a raw response (``client.….with_raw_response.create()``:
  its ``http_response``), a stream (``Stream`` / ``AsyncStream`` keep their ``response``),
  the SDKs' stream helpers (OpenAI's ``ChatCompletionStream`` / ``ResponseStream`` keep it
  as ``_response``, Anthropic's ``MessageStream`` as ``response``) and an
  ``httpx.Response`` itself; it goes with the response (no weak reference, whose creation
  and callback at the response's end cost more than the rest of this);
* a bounded map from ids to the price: the response's request id, found for parsed
  objects, whose ``_request_id`` both official SDKs fill from the ``x-request-id``
  (OpenAI) or ``request-id`` (Anthropic) header (when the upstream sent none the
  transport adds one, ``spendgate-…``, so every priced answer has one); and the answer's
  own id (``chatcmpl-…``, ``resp_…``, ``msg_…``), found for the objects the stream helpers
  build (``get_final_completion()``, ``get_final_response()``, ``get_final_message()``),
  which carry no request id. An answer id seen for two different calls (a server that
  reuses ids) finds neither: a wrong price is never returned. The ids of the newest
  :data:`CALLS_KEPT` calls are kept.

A call is filed by id when a price is first looked up by id (or every
:data:`_UNFILED_KEPT` calls), not while the call returns: until then it waits in a queue
with the start of its answer (``deque.append`` is atomic; filing pops them in order under
the lock), so a call that nobody asks about pays for no lock, no map and no id search.

A stream's price is known once it has ended (read to the end, or closed).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, deque
from decimal import Decimal
from typing import Any

import httpx

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.errors import UnpricedModelError
from spendgate.sdk.amounts import plain_usd
from spendgate.sdk.httpx_compat import RESPONSE_TYPES

__all__ = ["CALLS_KEPT", "EXTENSION", "answer_id", "breakdown_of", "cost_of", "remember", "reset"]

CALLS_KEPT = 10_000
"""The calls whose ids (request id, answer id) are kept for :func:`cost_of`."""
_IDS_KEPT = 2 * CALLS_KEPT

_ID = re.compile(rb'"id"\s*:\s*"([^"\\]{1,200})"')
"""An ``"id"`` key with a non-empty string value (no escapes)."""
_FIRST = b'{"id":"'
"""How most answers start (the fast path of :func:`answer_id`)."""
_HEAD = 1024
"""How far into an answer its own id is looked for."""
_AMBIGUOUS: Any = object()
"""Stored for an answer id that two calls had: found for neither."""

EXTENSION = "spendgate.cost_breakdown"
"""The key of a call's price in its response's ``extensions``."""

_UNFILED_KEPT = 1024
"""Calls that may wait in the queue before the remembering call files them."""

_lock = threading.Lock()
_by_id: OrderedDict[str, CostBreakdown] = OrderedDict()
_unfiled: deque[tuple[str | None, bytes, bool, CostBreakdown]] = deque()
"""(request id, the answer's start, whether it is a stream's first event, price)."""


def answer_id(head: bytes, *, event: bool = False) -> str | None:
    """The answer's own id in the start of its body: the first ``"id"`` of a complete answer
    before any nested object (``chatcmpl-…``, ``resp_…``, ``msg_…``), or, for the first event
    of a stream (``event=True``), the first ``"id"`` in it (chat chunks carry it at the top,
    ``response.created`` and ``message_start`` in the answer they open)."""
    if head.startswith(_FIRST):  # the usual answer: {"id":"…", …
        end = head.find(b'"', len(_FIRST), _HEAD)
        if end > len(_FIRST) and b"\\" not in head[len(_FIRST) : end]:
            return head[len(_FIRST) : end].decode("utf-8", "replace")
    end = min(len(head), _HEAD)
    if not event:  # the top level only: up to its first nested object or list
        start = head.find(b"{", 0, end) + 1
        for bracket in (b"{", b"["):
            at = head.find(bracket, start, end)
            if at >= 0:
                end = at
    found = _ID.search(head, 0, end)
    return found[1].decode("utf-8", "replace") if found is not None else None


def remember(
    response: httpx.Response | None,
    request_id: str | None,
    breakdown: CostBreakdown,
    head: bytes = b"",
    *,
    event: bool = False,
) -> None:
    """Keep the price of one call for :func:`cost_of`: on its response, and by its request
    id and its answer's own id (in ``head``, the start of its body, or of its first event
    for a stream: ``event=True``; see :func:`answer_id`)."""
    if response is not None:  # a copy: a transport may hand several responses one dict
        response.extensions = {**response.extensions, EXTENSION: breakdown}
    _unfiled.append((request_id, head[:_HEAD], event, breakdown))
    if len(_unfiled) >= _UNFILED_KEPT:
        with _lock:
            _file()


def _file() -> None:
    """File the queued calls by id, oldest first (lock held)."""
    while _unfiled:
        request_id, head, event, breakdown = _unfiled.popleft()
        answer = answer_id(head, event=event) if head else None
        for key in (request_id, answer if answer != request_id else None):
            if key:  # an id another call had already (a server reusing ids): neither's
                known = _by_id.get(key)
                if known is not None:
                    _by_id.move_to_end(key)
                _by_id[key] = breakdown if known is None or known is breakdown else _AMBIGUOUS
        while len(_by_id) > _IDS_KEPT:  # per call, as when each was filed on its own
            _by_id.popitem(last=False)


def _http_response(result: Any) -> httpx.Response | None:
    if isinstance(result, RESPONSE_TYPES):
        return result  # type: ignore[no-any-return]
    for name in ("http_response", "response", "_response"):
        value = getattr(result, name, None)
        if isinstance(value, RESPONSE_TYPES):
            return value  # type: ignore[no-any-return]
    return None


def breakdown_of(result: Any) -> CostBreakdown:
    """The :class:`~spendgate.core.pricing.breakdown.CostBreakdown` of a call made through an
    instrumented client, from its result (parsed object, raw response, stream, a stream
    helper or the object it built, httpx response).

    Raises:
        LookupError: the result is not one of an instrumented call (or a stream not ended yet).
    """
    response = _http_response(result)
    if response is not None:
        extensions = getattr(response, "extensions", None)
        found = extensions.get(EXTENSION) if isinstance(extensions, dict) else None
        if isinstance(found, CostBreakdown):
            return found
    with _lock:
        _file()
        if response is not None:
            keys: tuple[object, ...] = (
                response.headers.get("x-request-id") or response.headers.get("request-id"),
            )
        else:
            keys = (getattr(result, "_request_id", None), getattr(result, "id", None))
        for key in keys:
            if isinstance(key, str):
                found = _by_id.get(key)
                if found is not None and found is not _AMBIGUOUS:
                    return found
    raise LookupError(
        "no cost is known for this result: it was not returned by an instrumented client "
        "(spendgate.instrument(client)), or it is a stream that has not ended yet"
    )


def cost_of(result: Any) -> Decimal:
    """The exact cost in USD of a call made through an instrumented client.

    Raises:
        UnpricedModelError: the model has no price (the call is unpriced, not free).
        LookupError: the result is not one of an instrumented call.
    """
    breakdown = breakdown_of(result)
    if not breakdown.priced:
        raise UnpricedModelError(breakdown.model, breakdown.unpriced_reason)
    return plain_usd(breakdown.total)


def reset() -> None:
    """Forget every price remembered by id (tests use it; a response keeps its own)."""
    with _lock:
        _unfiled.clear()
        _by_id.clear()

"""``spendgate.cost_of(result)``: the cost of a call, read back from what the SDK returned.

The metered transport prices a call before the SDK parses its answer, and the SDK's parsed
objects keep no link to the HTTP response, so the transport remembers each call's price
in two places:

* a weak map from the ``httpx.Response`` it returned to the price: found for a raw
  response (``client.….with_raw_response.create()``: its ``http_response``), a stream
  (``Stream`` / ``AsyncStream`` keep their ``response``) and an ``httpx.Response`` itself;
  the entry goes when the response is garbage-collected;
* a bounded map from the response's request id to the price: found for parsed objects,
  whose ``_request_id`` both official SDKs fill from the ``x-request-id`` (OpenAI) or
  ``request-id`` (Anthropic) header. When the upstream sent no request id the transport
  adds one (``spendgate-…``), so every priced answer has one. The newest
  :data:`REQUEST_IDS_KEPT` are kept.

A stream's price is known once it has ended (read to the end, or closed).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import httpx

from spendgate.core.money import tidy
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.errors import UnpricedModelError
from spendgate.sdk.httpx_compat import RESPONSE_TYPES

__all__ = ["REQUEST_IDS_KEPT", "breakdown_of", "cost_of", "remember", "reset"]

REQUEST_IDS_KEPT = 10_000

_lock = threading.Lock()
_by_response: weakref.WeakKeyDictionary[httpx.Response, CostBreakdown] = weakref.WeakKeyDictionary()
_by_request_id: OrderedDict[str, CostBreakdown] = OrderedDict()


def remember(response: httpx.Response | None, request_id: str | None, breakdown: CostBreakdown) -> None:
    """Keep the price of one call for :func:`cost_of`."""
    with _lock:
        if response is not None:
            _by_response[response] = breakdown
        if request_id:
            _by_request_id[request_id] = breakdown
            _by_request_id.move_to_end(request_id)
            while len(_by_request_id) > REQUEST_IDS_KEPT:
                _by_request_id.popitem(last=False)


def _http_response(result: Any) -> httpx.Response | None:
    if isinstance(result, RESPONSE_TYPES):
        return result  # type: ignore[no-any-return]
    for name in ("http_response", "response"):
        value = getattr(result, name, None)
        if isinstance(value, RESPONSE_TYPES):
            return value  # type: ignore[no-any-return]
    return None


def breakdown_of(result: Any) -> CostBreakdown:
    """The :class:`~spendgate.core.pricing.breakdown.CostBreakdown` of a call made through an
    instrumented client, from its result (parsed object, raw response, stream, httpx response).

    Raises:
        LookupError: the result is not one of an instrumented call (or a stream not ended yet).
    """
    response = _http_response(result)
    with _lock:
        if response is not None:
            found = _by_response.get(response)
            if found is not None:
                return found
            request_id = response.headers.get("x-request-id") or response.headers.get("request-id")
        else:
            request_id = getattr(result, "_request_id", None)
        if isinstance(request_id, str) and request_id in _by_request_id:
            return _by_request_id[request_id]
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
    return tidy(breakdown.total)


def reset() -> None:
    """Forget every remembered price (tests use it)."""
    with _lock:
        _by_response.clear()
        _by_request_id.clear()

"""Prices remembered by id wait in a queue until a look-up files them
(``spendgate.sdk.results``): every call is found by its request id and its answer's own id,
however many calls came between, across filings and threads; a request id or an answer
id two calls had finds neither."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.sdk import results
from spendgate.sdk.results import _UNFILED_KEPT, CALLS_KEPT, breakdown_of


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    results.reset()
    yield
    results.reset()


def _price(n: int) -> CostBreakdown:
    return CostBreakdown(model=f"m{n}", priced=True, input=Decimal(n))


def _head(answer: str) -> bytes:
    return b'{"id":"' + answer.encode() + b'","object":"chat.completion","choices":[]}'


def test_each_call_is_found_by_either_id_across_filings() -> None:
    calls = 3 * _UNFILED_KEPT + 17  # several filings by the remembering calls, then a look-up's
    prices = [_price(n) for n in range(calls)]
    for n, price in enumerate(prices):
        results.remember(None, f"req-{n}", price, _head(f"chatcmpl-{n}"))
    assert len(results._unfiled) < _UNFILED_KEPT  # bounded while nothing looks up
    for n in (0, _UNFILED_KEPT - 1, _UNFILED_KEPT, calls - 1):
        assert breakdown_of(SimpleNamespace(_request_id=f"req-{n}")) is prices[n]
        assert breakdown_of(SimpleNamespace(_request_id=None, id=f"chatcmpl-{n}")) is prices[n]


def test_a_stream_is_found_by_the_id_in_its_first_event() -> None:
    price = _price(1)
    event = b'data: {"type":"message_start","message":{"id":"msg_9","type":"message"}}\n\n'
    results.remember(None, "req-s", price, event, event=True)
    assert breakdown_of(SimpleNamespace(_request_id=None, id="msg_9")) is price


def test_an_answer_id_two_calls_had_finds_neither_even_in_different_filings() -> None:
    results.remember(None, "req-a", _price(1), _head("chatcmpl-same"))
    with pytest.raises(LookupError):
        breakdown_of(SimpleNamespace(_request_id="req-unknown"))  # files req-a
    results.remember(None, "req-b", _price(2), _head("chatcmpl-same"))
    with pytest.raises(LookupError):
        breakdown_of(SimpleNamespace(_request_id=None, id="chatcmpl-same"))
    assert breakdown_of(SimpleNamespace(_request_id="req-b")).input == 2


def test_a_request_id_two_calls_had_finds_neither_but_each_answer_id_finds_its_own() -> None:
    first, second = _price(1), _price(2)
    results.remember(None, "trace-42", first, _head("chatcmpl-1"))
    with pytest.raises(LookupError):
        breakdown_of(SimpleNamespace(_request_id="req-unknown"))  # files the first call
    results.remember(None, "trace-42", second, _head("chatcmpl-2"))
    with pytest.raises(LookupError):
        breakdown_of(SimpleNamespace(_request_id="trace-42", id=None))
    assert breakdown_of(SimpleNamespace(_request_id="trace-42", id="chatcmpl-1")) is first
    assert breakdown_of(SimpleNamespace(_request_id="trace-42", id="chatcmpl-2")) is second


def test_the_newest_calls_are_kept() -> None:
    for n in range(CALLS_KEPT + 5):
        results.remember(None, f"req-{n}", _price(n), _head(f"chatcmpl-{n}"))
    assert breakdown_of(SimpleNamespace(_request_id=f"req-{CALLS_KEPT + 4}")).input == CALLS_KEPT + 4
    with pytest.raises(LookupError):
        breakdown_of(SimpleNamespace(_request_id="req-0", id=None))
    assert len(results._unfiled) == 0


def test_threads_remembering_and_looking_up_each_find_their_own() -> None:
    threads, per_thread = 8, 2_000
    start = threading.Barrier(threads)
    wrong: list[str] = []

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            price = _price(t * per_thread + i)
            results.remember(None, f"req-{t}-{i}", price, _head(f"chatcmpl-{t}-{i}"))
            parsed = SimpleNamespace(_request_id=None, id=f"chatcmpl-{t}-{i}")
            if i % 3 == 0 and breakdown_of(parsed) is not price:
                wrong.append(f"{t}-{i}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert wrong == []


def test_an_answer_id_reused_after_the_kept_calls_is_the_new_calls() -> None:
    """Filing trims after each call, as filing one call at a time did: an answer id whose
    first call has left the kept window is the newer call's, not ambiguous."""
    results.remember(None, "req-first", _price(1), _head("chatcmpl-dup"))
    for n in range(CALLS_KEPT):
        results.remember(None, f"req-{n}", _price(n), _head(f"chatcmpl-{n}"))
    newer = _price(2)
    results.remember(None, "req-newer", newer, _head("chatcmpl-dup"))
    assert breakdown_of(SimpleNamespace(_request_id=None, id="chatcmpl-dup")) is newer

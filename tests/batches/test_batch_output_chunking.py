"""Property: however the bytes of an output file arrive (chunks of any size, lines split
anywhere, even inside a UTF-8 character or a CRLF), the totals are the same, and they are
the sum of the lines priced one by one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import reduce
from itertools import pairwise
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spendgate
from spendgate.batches.output import BatchTotals, price_output, price_output_sync
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LIMIT = 2000  # max_line_bytes: the padded line below is longer


def batch_price(model: str, usage: Usage) -> CostBreakdown:
    return spendgate.price(model, usage, service_tier="batch", at=AT)


def _line(custom_id: str, body: Any, status: int = 200, error: Any = None) -> bytes:
    response = {"status_code": status, "request_id": "req", "body": body}
    return orjson.dumps({"id": "b", "custom_id": custom_id, "response": response, "error": error})


def _chat(
    model: str, prompt: int, completion: int, cached: int = 0, reasoning: int = 0, text: str = "ok"
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }


POOL: list[bytes] = [
    _line("a", _chat("gpt-4o-mini", 1200, 300, cached=1024)),
    _line("b", _chat("gpt-4o", 17, 3)),
    _line("c", _chat("o3", 500, 900, reasoning=700, text="déjà vu — ünïcødé ✓")),
    _line("d", _chat("gpt-5.4", 300_000, 2000, cached=100_000)),
    _line(
        "e",
        {
            "object": "list",
            "data": [],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 9, "total_tokens": 9},
        },
    ),
    _line("f", _chat("no-such-model", 10, 10)),
    _line("g", {"error": {"message": "bad"}}, status=400),
    _line("h", None, error={"code": "batch_expired", "message": "expired"}),
    _line("i", {**_chat("gpt-4o-mini", 1, 1), "usage": None}),
    _line("j", _chat("gpt-4o-mini", 5, 5, text="x" * (LIMIT + 100))),
    b'{"custom_id": "broken", "respo',
    b"",
    b"  \t",
]


@st.composite
def files_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(st.sampled_from(POOL), min_size=0, max_size=40))
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines), max_size=len(lines)))
    data = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    if draw(st.booleans()):
        data = data.rstrip(b"\r\n")  # no final newline
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
    return data, cuts


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _counts(totals: BatchTotals) -> tuple[object, ...]:
    return (
        totals.cost_nanos,
        totals.usage,
        totals.lines_ok,
        totals.lines_failed,
        totals.lines_invalid,
        totals.unpriced_lines,
        totals.models,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files_and_cuts(), st.booleans())
def test_any_chunking_gives_the_same_totals(file: tuple[bytes, list[int]], memoize: bool) -> None:
    data, cuts = file
    whole = price_output_sync([data], batch_price, api="openai", max_line_bytes=LIMIT)
    chunked = price_output_sync(
        _chunks(data, cuts), batch_price, api="openai", memoize=memoize, max_line_bytes=LIMIT
    )
    streamed = asyncio.run(
        price_output(_stream(_chunks(data, cuts)), batch_price, api="openai", max_line_bytes=LIMIT)
    )
    assert chunked == whole
    assert streamed == whole
    assert sum(whole.cost_items.values()) == whole.cost_nanos

    # ... and it is the sum of the lines priced one by one
    one_by_one = [
        price_output_sync([line], batch_price, api="openai", max_line_bytes=LIMIT)
        for line in data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    ]
    assert _counts(reduce(BatchTotals.__add__, one_by_one, BatchTotals())) == _counts(whole)

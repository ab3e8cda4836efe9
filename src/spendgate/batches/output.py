"""Pricing a batch's output, line by line, streamed: what the batch cost, exactly.

The exact bill of a batch is the sum, over its output lines, of each line's price in
integer nano-USD (``CostBreakdown.total_nanos``), each line priced on its own as
``spendgate.completion_cost(body, batch=True)`` would price it as a separate call. The
batch-cost poller streams the provider's output (and error) file through
:func:`price_output` and settles the batch's reservation with ``cost_nanos``; nothing here
knows about HTTP, the database or the counters. What a line looks like is
:mod:`spendgate.batches.output_lines`; how lines are priced and added up, fast,
:mod:`spendgate.batches.output_pricer`; what they add up to, :class:`BatchTotals`.

Every line is accounted for, never silently skipped (known-failure-modes §11):

* ``lines_ok``: the request succeeded and its usage was read. Its price comes from the
  caller's ``price_line(model, usage)`` (the poller passes the deployment's price at the
  batch tier). A line with usage but no price (``priced=False``) is counted in
  ``unpriced_lines`` and makes the totals ``unpriced``: never $0 silently.
* ``lines_failed``: the provider reports the request failed (an error-file line, a status
  of 400 or more, an ``errored`` / ``canceled`` / ``expired`` Anthropic result): cost 0.
* ``lines_invalid``: not JSON, not the provider's shape, a success without usage or
  model, or a line longer than ``max_line_bytes``. Counted, with the first few line
  numbers and reasons kept for the log.

Blank lines (a file's trailing newline) are not lines. Memory does not grow with the file:
the input is read chunk by chunk, a line at a time, and what is kept per distinct
(model, usage) — its price, so that a usage seen again is not priced again — is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable
from datetime import datetime
from typing import Final, Protocol

from spendgate.batches.output_lines import OutputApi
from spendgate.batches.output_pricer import DEFAULT_MAX_LINE_BYTES, OutputPricer, PriceLine
from spendgate.batches.output_totals import MAX_PROBLEMS, BatchTotals, LineProblem
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage

__all__ = [
    "MAX_PROBLEMS",
    "BatchTotals",
    "LineProblem",
    "OutputApi",
    "OutputPricer",
    "PriceLine",
    "PricesServed",
    "batch_price_line",
    "price_output",
    "price_output_sync",
]

_YIELD_EVERY: Final = 512  # lines between two returns to the event loop in price_output


class PricesServed(Protocol):
    """A deployment that prices what it served (``gateway.deployments.Deployment`` is one)."""

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown: ...


def batch_price_line(deployment: PricesServed, at: datetime) -> PriceLine:
    """The ``price_line`` of a batch served by ``deployment``: every line at the deployment's
    prices (its price layer, discounts and margins) at the ``batch`` service tier, as of
    ``at`` (fixed, so that pricing the same file again gives the same bill: the batch's
    completion time, say). The line's own ``model`` (the provider's snapshot name) is not
    used: the deployment knows what it serves."""

    def price_line(model: str, usage: Usage) -> CostBreakdown:
        return deployment.price(usage, at, served_tier="batch")

    return price_line


async def price_output(
    lines: AsyncIterable[bytes],
    price_line: PriceLine,
    *,
    api: OutputApi,
    default_model: str | None = None,
    source: str = "",
    memoize: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> BatchTotals:
    """Price a batch's output file, streamed.

    Args:
        lines: the file's bytes in chunks of any size (``httpx.Response.aiter_bytes()``,
            a file read in blocks …); a line may span chunks.
        price_line: prices one succeeded line, ``(model, usage) -> CostBreakdown``.
        api: ``"openai"`` (an output or error file) or ``"anthropic"`` (message-batch results).
        default_model: the model of a line whose body names none (without it, such a line
            is invalid).
        source: names the file in the problems kept (``"output"``, ``"error"``).
        memoize: price each distinct (model, usage) once (``price_line`` must be pure).
        max_line_bytes: a longer line is counted invalid, and never held in memory whole.

    Returns:
        The :class:`BatchTotals`. Price a batch's output and error files one by one and add
        the totals.

    Raises:
        Whatever ``price_line`` or ``lines`` raise (a line the pricer cannot read is
        counted, never raised).
    """
    pricer = OutputPricer(
        price_line,
        api=api,
        default_model=default_model,
        source=source,
        memoize=memoize,
        max_line_bytes=max_line_bytes,
    )
    since_yield = 0
    async for chunk in lines:
        before = pricer.lines_read
        pricer.feed(chunk)
        since_yield += pricer.lines_read - before
        if since_yield >= _YIELD_EVERY:  # a large file must not hold the event loop
            since_yield = 0
            await asyncio.sleep(0)
    return pricer.close()


def price_output_sync(
    lines: Iterable[bytes],
    price_line: PriceLine,
    *,
    api: OutputApi,
    default_model: str | None = None,
    source: str = "",
    memoize: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> BatchTotals:
    """:func:`price_output` over a plain iterable of chunks (a binary file iterates by line;
    ``iter(functools.partial(f.read, 1 << 16), b"")`` by block)."""
    pricer = OutputPricer(
        price_line,
        api=api,
        default_model=default_model,
        source=source,
        memoize=memoize,
        max_line_bytes=max_line_bytes,
    )
    for chunk in lines:
        pricer.feed(chunk)
    return pricer.close()

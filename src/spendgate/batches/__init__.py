"""Batch jobs as billed objects (issue #12, DESIGN §5.12): the managed files and batches
that pass through the gateway, the checks and the worst case reserved at creation, and the
pricing of their output, line by line, settled once.

The gateway's routes (``spendgate.gateway``) and the batch-cost poller (a ``spendgate.jobs``
job) are built on this package; it sits below both and above ``enforcement``, ``ledger``,
``entities`` and ``providers``.
"""

from __future__ import annotations

from spendgate.batches.errors import BatchError, BatchInputError
from spendgate.batches.output import (
    BatchTotals,
    LineProblem,
    OutputApi,
    OutputPricer,
    PriceLine,
    PricesServed,
    batch_price_line,
    price_output,
    price_output_sync,
)
from spendgate.batches.requests import (
    ENDPOINTS,
    MAX_FILE_LINES,
    MAX_MESSAGE_BATCH_REQUESTS,
    BatchRequest,
    PricedDeployment,
    line_worst_case,
    line_worst_tokens,
    parse_anthropic_requests,
    parse_openai_input,
    worst_case_nanos,
)
from spendgate.batches.store import (
    BatchCursor,
    ManagedObjectPage,
    ManagedObjectRepository,
    ObjectApi,
    ObjectKind,
    RequestCounts,
    UnsettledBatches,
    new_object_id,
)

__all__: list[str] = []
__all__ += [
    "ENDPOINTS",
    "MAX_FILE_LINES",
    "MAX_MESSAGE_BATCH_REQUESTS",
    "BatchError",
    "BatchInputError",
    "BatchRequest",
    "PricedDeployment",
    "line_worst_case",
    "line_worst_tokens",
    "parse_anthropic_requests",
    "parse_openai_input",
    "worst_case_nanos",
]
__all__ += [
    "BatchCursor",
    "ManagedObjectPage",
    "ManagedObjectRepository",
    "ObjectApi",
    "ObjectKind",
    "RequestCounts",
    "UnsettledBatches",
    "new_object_id",
]
__all__ += [
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

from spendgate.batches.settlement import (  # noqa: E402
    BatchSettlement,
    DurableRecorder,
    SettledDeployment,
    billed_at,
    is_ready,
    is_terminal,
    provider_counts,
    settle_batch,
)

__all__ += [
    "BatchSettlement",
    "DurableRecorder",
    "SettledDeployment",
    "billed_at",
    "is_ready",
    "is_terminal",
    "provider_counts",
    "settle_batch",
]

from spendgate.batches.poller import BatchPoller, PollCycle, PolledDeployment  # noqa: E402

__all__ += ["BatchPoller", "PollCycle", "PolledDeployment"]

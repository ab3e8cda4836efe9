"""The child side of the BudgetManager multi-process tests: each worker is a separate
process (``multiprocessing``, spawn) that opens its own BudgetManager on the shared store.

A module of its own (not the test file), so a spawned child imports only this.
"""

from __future__ import annotations

from typing import Any

from spendgate.core.money import to_nano
from spendgate.costs import completion_cost
from spendgate.sdk.budget_manager import BudgetExceededError, BudgetManager

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]


def response(worker: int, i: int) -> dict[str, Any]:
    """A distinct chat completion per (worker, i), so every update has its own cost."""
    prompt, completion = 100 + 13 * worker + i, 7 * i + worker + 1
    return {
        "id": f"chatcmpl-{worker}-{i}",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def expected_update_total(workers: int, updates: int) -> int:
    """What every worker's updates add up to, priced one by one (nano-USD)."""
    return sum(to_nano(completion_cost(response(w, i))) for w in range(workers) for i in range(updates))


def hammer(args: tuple[str, str | None, str, int, int]) -> tuple[int, int, int]:
    """Apply ``updates`` update_cost calls to user ``u``, then reserve-and-settle calls for
    user ``r`` until the budget refuses. Returns (admitted calls, settled nano-USD, the
    worst case of the refused call)."""
    client_type, path, project, worker, updates = args
    manager = BudgetManager(project, client_type, path=path)
    try:
        for i in range(updates):
            manager.update_cost("u", completion_obj=response(worker, i))
        admitted = settled = 0
        while True:
            try:
                reservation = manager.check_and_reserve("r", MODEL, MESSAGES, max_tokens=40 + worker)
            except BudgetExceededError as refused:
                return admitted, settled, refused.requested_nanos
            # The real cost is below the worst case, by a different amount each time.
            cost = reservation.amount_nanos - (admitted * 7 + worker) % 1000
            assert manager.settle(reservation, cost_nanos=cost)
            admitted += 1
            settled += cost
    finally:
        manager.close()

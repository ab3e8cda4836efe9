"""Enforcement: budgets and rate limits that cannot be raced past.

* :mod:`~spendgate.enforcement.limits` — what is limited (budgets, rate limits, keys) of which
  :class:`~spendgate.core.scopes.Scope` (re-exported here);
* :mod:`~spendgate.enforcement.admission` — how (reserve at admission, settle or release);
* :mod:`~spendgate.stores.counters` — where (in-process or Redis counters).

See ``docs/enforcement.md``.
"""

from __future__ import annotations

from spendgate.core.scopes import Scope
from spendgate.enforcement.admission import (
    Admission,
    BudgetView,
    EnforcementRequest,
    RateView,
    SoftBudgetCrossing,
    Ticket,
)
from spendgate.enforcement.estimate import declared_max_output, worst_case_nanos, worst_case_tokens
from spendgate.enforcement.explain import ScopeWindowState, explain
from spendgate.enforcement.headers import limit_headers
from spendgate.enforcement.limits import BudgetLimit, KeySpace, RateLimit, scope_limits
from spendgate.stores.counters import MemoryStorage, Storage, storage_from_url

__all__ = [
    "Admission",
    "BudgetLimit",
    "BudgetView",
    "EnforcementRequest",
    "KeySpace",
    "MemoryStorage",
    "RateLimit",
    "RateView",
    "Scope",
    "ScopeWindowState",
    "SoftBudgetCrossing",
    "Storage",
    "Ticket",
    "declared_max_output",
    "explain",
    "limit_headers",
    "scope_limits",
    "storage_from_url",
    "worst_case_nanos",
    "worst_case_tokens",
]

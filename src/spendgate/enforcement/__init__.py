"""Enforcement: budgets and rate limits that cannot be raced past.

* :mod:`~spendgate.enforcement.limits` — what is limited (budgets, rate limits, keys) of which
  :class:`~spendgate.core.scopes.Scope` (re-exported here);
* :mod:`~spendgate.enforcement.enforcer` — how: :class:`Enforcer` reserves at admission, then
  settles or releases a :class:`Reservation`; its parts are
  :mod:`~spendgate.enforcement.planning`, :mod:`~spendgate.enforcement.refusals`,
  :mod:`~spendgate.enforcement.seeding` and :mod:`~spendgate.enforcement.reservation`;
* :mod:`~spendgate.enforcement.explain` — why a request would be admitted or refused;
* :mod:`~spendgate.stores.counters` — where (in-process or Redis counters).

See ``docs/enforcement.md``.
"""

from __future__ import annotations

from spendgate.core.scopes import Scope
from spendgate.enforcement.enforcer import CounterReading, Enforcer, Mode
from spendgate.enforcement.estimate import declared_max_output, worst_case_nanos, worst_case_tokens
from spendgate.enforcement.explain import ScopeWindowState, explain
from spendgate.enforcement.limits import BudgetLimit, KeySpace, RateLimit, scope_limits
from spendgate.enforcement.reservation import (
    BudgetView,
    EnforcementRequest,
    RateView,
    Reservation,
    SoftBudgetCrossing,
)
from spendgate.enforcement.seeding import SeedLoader
from spendgate.stores.counters import MemoryStorage, Storage, storage_from_url

__all__ = [
    "BudgetLimit",
    "BudgetView",
    "CounterReading",
    "EnforcementRequest",
    "Enforcer",
    "KeySpace",
    "MemoryStorage",
    "Mode",
    "RateLimit",
    "RateView",
    "Reservation",
    "Scope",
    "ScopeWindowState",
    "SeedLoader",
    "SoftBudgetCrossing",
    "Storage",
    "declared_max_output",
    "explain",
    "scope_limits",
    "storage_from_url",
    "worst_case_nanos",
    "worst_case_tokens",
]

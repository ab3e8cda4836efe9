"""The SDK: spendgate's pricing and budgets in the caller's own process, without a gateway.

Issue #14. Each module is imported on its own (``spendgate.sdk.budget_manager`` …), so
importing this package loads nothing.
"""

from __future__ import annotations

__all__: list[str] = []

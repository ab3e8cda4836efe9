"""Spend exports (``/global/spend/export``, CSV and FOCUS 1.2), streamed: issue #13.

Filled by the exports work; every read applies :mod:`spendgate.admin.spend_access`.
"""

from __future__ import annotations

from spendgate.admin._http import Endpoint

__all__ = ["ENDPOINTS"]

ENDPOINTS: tuple[Endpoint, ...] = ()

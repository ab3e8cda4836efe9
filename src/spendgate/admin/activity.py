"""LiteLLM's daily activity endpoints (``/user|team|tag|customer/daily/activity``): issue #13.

Filled by the activity work; every read applies :mod:`spendgate.admin.spend_access`.
"""

from __future__ import annotations

from spendgate.admin._http import Endpoint

__all__ = ["ENDPOINTS"]

ENDPOINTS: tuple[Endpoint, ...] = ()

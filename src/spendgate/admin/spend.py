"""LiteLLM's spend endpoints (``/spend/*``, ``/global/spend*``): issue #13.

Filled by the spend-endpoints work; every read applies :mod:`spendgate.admin.spend_access`.
"""

from __future__ import annotations

from spendgate.admin._http import Endpoint

__all__ = ["ENDPOINTS"]

ENDPOINTS: tuple[Endpoint, ...] = ()

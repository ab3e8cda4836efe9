"""Moved to :mod:`spendgate.http.headers` (the shared HTTP edge owns every response header).

A compatibility re-export until ``spendgate.enforcement`` and its tests import from there;
then this module is deleted.
"""

from __future__ import annotations

from spendgate.http.headers import format_reset, limit_headers

__all__ = ["format_reset", "limit_headers"]

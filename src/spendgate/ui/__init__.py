"""The dashboard, served by the gateway at ``/ui`` (issue #18; docs/dashboard.md).

Server-rendered Jinja2 pages with htmx and uPlot vendored in ``static/vendor``: nothing
from a CDN. It has no queries of its own: every read and write goes through the
management and spend API, in process, as the signed-in key (:mod:`spendgate.ui.api`).
"""

from __future__ import annotations

from spendgate.ui.app import UiSettings, ui_routes

__all__ = ["UiSettings", "ui_routes"]

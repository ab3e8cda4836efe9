"""The management API: LiteLLM's /key, /user, /team, /organization, /customer and /budget
endpoints over the entity tables, with roles (see ``docs/admin-api.md``)."""

from __future__ import annotations

from spendgate.admin._http import AdminSettings
from spendgate.admin.app import ENDPOINTS, admin_routes, build_admin_app, openapi_document
from spendgate.admin.budget_explain import ExplainTarget, NotAvailable

__all__ = [
    "ENDPOINTS",
    "AdminSettings",
    "ExplainTarget",
    "NotAvailable",
    "admin_routes",
    "build_admin_app",
    "openapi_document",
]

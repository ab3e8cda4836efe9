"""The management API: LiteLLM's /key, /user, /team, /organization, /customer and /budget
endpoints over the entity tables, with roles (see ``docs/admin-api.md``)."""

from __future__ import annotations

from spendgate.admin._http import AdminSettings, Conflict
from spendgate.admin.app import ENDPOINTS, admin_routes, build_admin_app, openapi_document
from spendgate.admin.explain import ExplainTarget

__all__ = [
    "ENDPOINTS",
    "AdminSettings",
    "Conflict",
    "ExplainTarget",
    "admin_routes",
    "build_admin_app",
    "openapi_document",
]

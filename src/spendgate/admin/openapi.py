"""The management API's OpenAPI document, generated from the pydantic models that validate
the requests.

Limits (``maximum``, ``maxLength``, ``maxItems``), formats (``pattern``, ``format``) and
either-or rules (``anyOf``, ``not``, ``dependentRequired``) come from the models in
:mod:`spendgate.admin.schemas`, so the document and the validation cannot disagree;
schemathesis checks it (``tests/admin/test_admin_schemathesis.py``). Every operation
declares every status the admin pipeline (:mod:`spendgate.admin._http`) can answer, each
with the OpenAI error shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from spendgate.admin import budget_explain
from spendgate.admin import schemas as s
from spendgate.admin._http import Endpoint

__all__ = ["ERROR_STATUSES", "build_document"]

ERROR_STATUSES = ("400", "401", "403", "404", "409", "413", "422", "503")
"""What every management operation may answer besides 200 (see :mod:`spendgate.admin._http`)."""

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}


_PUBLIC_NAMES = {"BudgetLimitField": "BudgetLimit"}
"""Models whose Python name differs from the component name clients already know."""


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON schema, plus what the models' shared validator enforces: no string
    (nor map key) holds a NUL character."""

    def normalize_name(self, name: str) -> str:
        out = super().normalize_name(name)
        return _PUBLIC_NAMES.get(out, out)

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        out = super().str_schema(schema)
        if "pattern" not in out:  # the lengths repeated, so a generator draws fitting strings
            out["pattern"] = s.NUL_FREE.replace(
                "*", f"{{{out.get('minLength', 0)},{out.get('maxLength', '')}}}"
            )
        return out

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        out = super().dict_schema(schema)
        # Pydantic states a key pattern as patternProperties; a map's values all have one schema.
        by_pattern = out.pop("patternProperties", {})
        if by_pattern:
            ((pattern, values),) = by_pattern.items()
            out["additionalProperties"] = values
            out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": pattern}
        else:
            out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": s.NUL_FREE}
        return out


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "_").replace("{", "").replace("}", "")


def _parameter_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query or path parameter's schema: an absent parameter is the null, so no null branch."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "default") or v is not None}
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        rest = {k: v for k, v in prop.items() if k != "anyOf"}
        return {**rest, **branches[0]}
    return prop


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if ep.path_param is not None and ep.body is not None:
        prop = ep.body.model_json_schema(schema_generator=_Schema)["properties"][ep.path_param]
        out.append({"name": ep.path_param, "in": "path", "required": True, "schema": _parameter_schema(prop)})
    if ep.query is not None:
        schema = ep.query.model_json_schema(schema_generator=_Schema)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            out.append(
                {"name": name, "in": "query", "required": name in required, "schema": _parameter_schema(prop)}
            )
    return out


def _operation(ep: Endpoint, method: str, refs: dict[Any, Any]) -> dict[str, Any]:
    statuses = ERROR_STATUSES + (("501",) if ep.handler is budget_explain.explain_budget else ())
    op: dict[str, Any] = {
        "summary": ep.summary,
        "tags": [ep.tag],
        "operationId": f"{method.lower()}_{_slug(ep.path)}",
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "OK", "content": {ep.media_type: {"schema": {}}}},
            **{code: {"$ref": "#/components/responses/Error"} for code in statuses},
        },
    }
    if ep.body is not None:
        op["requestBody"] = {
            # LiteLLM's /key/{key}/regenerate may be sent without a body; every other body is required.
            "required": ep.path_param is None,
            "content": {"application/json": {"schema": refs[(ep.body, "validation")]}},
        }
    parameters = _parameters(ep)
    if parameters:
        op["parameters"] = parameters
    return op


def build_document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``: every path, method, request and response."""
    models = sorted(
        {m for ep in endpoints for m in (ep.body, ep.query) if m is not None}, key=lambda m: m.__name__
    )
    refs, top = models_json_schema(
        [(m, "validation") for m in models],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schema,
    )
    paths: dict[str, Any] = {}
    for ep in endpoints:
        item = paths.setdefault(ep.path, {})
        for method in ep.methods:
            item[method.lower()] = _operation(ep, method, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spendgate management API",
            "version": "1",
            "description": (
                "LiteLLM-compatible key, user, team, organization, customer and budget management. "
                "Limits and validation: docs/admin-api.md."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(top.get("$defs", {})),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error in the OpenAI shape",
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                }
            },
        },
    }

"""/openapi.json lists every management path, method and request schema."""

from __future__ import annotations

from admin_helpers import Api

from spendgate.admin import ENDPOINTS, openapi_document


def test_document_has_every_path_method_and_schema() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    for ep in ENDPOINTS:
        item = doc["paths"][ep.path]
        for method in ep.methods:
            op = item[method.lower()]
            if ep.body is not None:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                name = ref.rsplit("/", 1)[1]
                assert name in doc["components"]["schemas"], ref
            if ep.query is not None:
                names = {p["name"] for p in op.get("parameters", ())}
                assert names == set(ep.query.model_fields)
    generate = doc["components"]["schemas"]["KeyGenerate"]
    assert generate["additionalProperties"] is False
    for field in (
        "max_budget",
        "budget_duration",
        "budget_limits",
        "soft_budget",
        "model_max_budget",
        "tpm_limit",
    ):
        assert field in generate["properties"]
    assert doc["paths"]["/organization/update"].keys() == {"patch", "post"}


async def test_served_at_openapi_json(sqlite_api: Api) -> None:
    status, doc = await sqlite_api.get("/openapi.json", key=None)
    assert status == 200 and "/key/generate" in doc["paths"] and "/budget/list" in doc["paths"]

"""/openapi.json is generated from the models that validate: every path, method, request
schema, limit, format, either-or rule and response status is in it, and the validation
does what it says (NUL characters, huge numbers, empty bodies and mistyped values are a
4xx naming the field, never a 500, on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from admin_helpers import Api
from pydantic import BaseModel, ValidationError

from spendgate.admin import ENDPOINTS, openapi_document
from spendgate.admin import schemas as s


def _props(doc: dict[str, Any], model: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][model]["properties"])


def _branch(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema."""
    if "anyOf" not in prop:
        return prop
    (only,) = [b for b in prop["anyOf"] if b != {"type": "null"}]
    return dict(only)


def test_document_has_every_path_method_and_schema() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    for ep in ENDPOINTS:
        item = doc["paths"][ep.path]
        for method in ep.methods:
            op = item[method.lower()]
            declared = set(op["responses"])
            assert {"200", "400", "401", "403", "404", "409", "413", "422", "503"} <= declared, ep.path
            error = op["responses"]["422"]["$ref"]
            assert error == "#/components/responses/Error"
            if ep.body is not None:
                body = op["requestBody"]
                assert body["required"] is (ep.path_param is None), ep.path
                ref = body["content"]["application/json"]["schema"]["$ref"]
                name = ref.rsplit("/", 1)[1]
                assert name in doc["components"]["schemas"], ref
            if ep.query is not None:
                names = {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}
                assert names == set(ep.query.model_fields)
    assert "501" in doc["paths"]["/budget/explain"]["post"]["responses"]
    error_shape = doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert error_shape["properties"]["error"]["required"] == ["message", "type", "param", "code"]
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


def test_document_states_the_limits_formats_and_either_or_rules() -> None:
    doc = openapi_document()
    key = _props(doc, "KeyGenerate")
    usd_number, usd_text = _branch(key["max_budget"])["anyOf"]
    assert usd_number == {"type": "number", "minimum": 0, "maximum": 1_000_000_000}
    assert usd_text["pattern"] == s.USD_TEXT
    assert _branch(key["tpm_limit"])["maximum"] == 2**62
    assert _branch(key["max_parallel_requests"])["maximum"] == 2**31 - 1
    assert _branch(key["key_alias"])["maxLength"] == 255
    assert _branch(key["budget_duration"])["pattern"] == s.DURATION
    assert _branch(key["duration"])["pattern"] == s.EXPIRY
    assert _branch(key["temp_budget_expiry"])["format"] == "date-time"
    assert _branch(key["tags"])["maxItems"] == s.MAX_ITEMS
    assert _branch(key["budget_limits"])["maxItems"] == s.MAX_WINDOWS
    assert _branch(key["user_id"])["pattern"] == "^[^\\u0000]{1,255}$"  # no NUL, 1 to 255 characters
    assert _branch(key["model_rpm_limit"])["propertyNames"]["pattern"] == "^[^\\u0000]{1,255}$"
    assert doc["components"]["schemas"]["KeyGenerate"]["dependentRequired"] == {
        "temp_budget_increase": ["temp_budget_expiry"],
        "temp_budget_expiry": ["temp_budget_increase"],
    }
    for model in ("UserUpdate", "Member", "TeamMemberUpdate", "TeamMemberDelete"):
        rule = doc["components"]["schemas"][model]["anyOf"]
        assert [b["required"] for b in rule] == [["user_id"], ["user_email"]], model
    assert [b["required"] for b in doc["components"]["schemas"]["KeyDelete"]["anyOf"]] == [
        ["keys"],
        ["key_aliases"],
    ]
    assert [b["required"] for b in doc["components"]["schemas"]["KeyUpdate"]["anyOf"]] == [
        ["key"],
        ["key_alias"],
    ]
    assert "anyOf" not in doc["components"]["schemas"]["KeyRegenerateByPath"]  # the path names the key
    assert doc["components"]["schemas"]["CustomerNew"]["not"]["required"] == ["budget_id", "max_budget"]
    assert _props(doc, "TeamMemberAdd")["member"]["anyOf"][1]["minItems"] == 1
    assert _branch(_props(doc, "UserIds")["user_ids"])["minItems"] == 1
    page = next(p for p in doc["paths"]["/key/list"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"]["minimum"] == 1 and page["schema"]["maximum"] == 1_000_000
    user_id = next(p for p in doc["paths"]["/key/list"]["get"]["parameters"] if p["name"] == "user_id")
    assert user_id["schema"]["type"] == "string"  # no null branch: an absent parameter is the null
    (path,) = doc["paths"]["/key/{key}/regenerate"]["post"]["parameters"]
    assert path["in"] == "path" and path["schema"]["maxLength"] == 255


def _accepts(model: type[BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data, strict=True)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "text",
    ["30s", "1h", "24h", "48h", "7d", "30d", "1mo", "12mo", "2w", "daily", "monthly", "annually",
     "0d", "01d", "1H", " 1h", "1h ", "1x", "hour", "1 d", "9999999d", "99999mo", "٣d", "1d\x00"],
)  # fmt: skip
def test_budget_duration_pattern_is_the_validation(text: str) -> None:
    in_schema = re.fullmatch(s.DURATION, text) is not None
    assert _accepts(s.BudgetLimitField, {"budget_duration": text, "max_budget": 1}) == in_schema


def test_hours_above_a_day_must_be_whole_days() -> None:
    """The one duration rule a pattern cannot state (documented as a 422)."""
    assert re.fullmatch(s.DURATION, "25h") is not None
    assert not _accepts(s.BudgetLimitField, {"budget_duration": "25h", "max_budget": 1})


@pytest.mark.parametrize(
    "text", ["30d", "12h", "1mo", "9999mo", "99999w", "0d", "10000mo", "100000w", "30D", " 30d", "1y"]
)
def test_key_duration_pattern_is_the_validation(text: str) -> None:
    assert _accepts(s.KeyGenerate, {"duration": text}) == (re.fullmatch(s.EXPIRY, text) is not None)


@pytest.mark.parametrize(
    "value", ["12.5", "0", "1000000000", "1e3", "-1", " 1", "1_000", "NaN", "Infinity", "0x10", "1."]
)
def test_usd_text_pattern_is_the_validation(value: str) -> None:
    assert _accepts(s.BudgetNew, {"max_budget": value}) == (re.fullmatch(s.USD_TEXT, value) is not None)


async def test_nul_anywhere_is_422_naming_the_field(api: Api) -> None:
    """PostgreSQL cannot store a NUL: it is refused before the database, on both backends."""
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/key/generate", {"key_alias": "a\x00b"}, "key_alias"),
        ("/key/generate", {"metadata": {"note": ["x", "y\x00"]}}, "metadata"),
        ("/key/generate", {"metadata": {"a\x00": 1}}, "metadata"),
        ("/key/generate", {"model_rpm_limit": {"gpt\x00": 1}}, "model_rpm_limit"),
        (
            "/key/generate",
            {"budget_limits": [{"budget_duration": "1d\x00", "max_budget": 1}]},
            "budget_limits",
        ),
        ("/user/new", {"user_id": "\x00"}, "user_id"),
        ("/team/new", {"team_alias": "t\x00"}, "team_alias"),
        ("/customer/new", {"user_id": "c\x00"}, "user_id"),
        ("/organization/new", {"organization_alias": "\x00"}, "organization_alias"),
        ("/budget/new", {"budget_id": "b\x00"}, "budget_id"),
    ]
    for path, body, param in cases:
        status, err = await api.post(path, body)
        assert status == 422, (path, body, err)
        assert err["error"]["param"] == param and "NUL" in err["error"]["message"], err
    status, err = await api.call("POST", "/key/generate", content=b'{"metadata": {"x": ["\\ud800"]}}')
    assert status == 422 and err["error"]["param"] == "metadata" and "surrogate" in err["error"]["message"]
    status, err = await api.call("POST", "/key/generate", content=b'{"key_alias": "a\\udfff"}')
    assert status == 422 and err["error"]["param"] == "key_alias", err
    status, err = await api.get("/key/list", params={"user_id": "u\x00"})
    assert status == 422 and err["error"]["param"] == "user_id", err
    status, err = await api.post("/key/%00/regenerate", {})
    assert status == 422 and err["error"]["param"] == "key", err
    assert (await api.ok("GET", "/user/list")) is not None  # nothing was written


async def test_numbers_beyond_the_limits_are_422(api: Api) -> None:
    """A USD amount whose nano-USD overflow a BIGINT, or a count beyond its column, is a 422."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_budget": 10**10}, "max_budget"),
        ({"max_budget": 10**19}, "max_budget"),
        ({"max_budget": "1e400"}, "max_budget"),
        ({"soft_budget": "1000000000.000000001"}, "soft_budget"),
        ({"tpm_limit": 2**63}, "tpm_limit"),
        ({"rpm_limit": 2**62 + 1}, "rpm_limit"),
        ({"max_parallel_requests": 2**31}, "max_parallel_requests"),
        ({"model_tpm_limit": {"m": 2**64}}, "model_tpm_limit.m"),
        (
            {"budget_limits": [{"budget_duration": "99999999d", "max_budget": 1}]},
            "budget_limits.0.budget_duration",
        ),
        ({"duration": "99999999mo"}, "duration"),
        ({"tags": ["t"] * (s.MAX_ITEMS + 1)}, "tags"),
        ({"key_alias": "a" * 256}, "key_alias"),
        ({"user_id": "u" * 256}, "user_id"),
    ]
    for body, param in cases:
        status, err = await api.post("/key/generate", body)
        assert status == 422, (body, err)
        assert err["error"]["param"] == param, (body, err)
    deep: Any = 1
    for _ in range(s.MAX_DEPTH):
        deep = [deep]
    for metadata in ({"n": 2**63}, {"n": -(2**64)}, {"n": [1, {"m": 10**30}]}, {"deep": deep}):
        status, err = await api.post("/key/generate", {"metadata": metadata})
        assert status == 422 and err["error"]["param"] == "metadata", (metadata, err)
    for metadata in ({"n": 2**63 - 1, "f": 1.5}, {"deep": deep[0]}):
        await api.ok("POST", "/key/generate", {"metadata": metadata})
    status, err = await api.call("POST", "/key/generate", content=b'{"metadata": {"n": 1e400}}')
    assert status == 422 and err["error"]["param"] == "metadata", err
    for expiry in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"):  # no such instant in UTC
        status, err = await api.post(
            "/key/generate", {"temp_budget_increase": 1, "temp_budget_expiry": expiry}
        )
        assert status == 422 and err["error"]["param"] == "temp_budget_expiry", err
    status, err = await api.call("POST", "/key/generate", content=b'{"max_budget": 1000000000.000000001}')
    assert status == 422 and err["error"]["param"] == "max_budget", err  # a JSON number read exactly
    key = await api.ok(
        "POST",
        "/key/generate",
        {"max_budget": 1_000_000_000, "tpm_limit": 2**62, "max_parallel_requests": 2**31 - 1},
    )
    assert key["max_budget"] == 1_000_000_000 and key["tpm_limit"] == 2**62


async def test_values_must_have_their_json_type(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tpm_limit": "5"}, "tpm_limit"),
        ({"blocked": 1}, "blocked"),
        ({"blocked": "true"}, "blocked"),
        ({"key_alias": 5}, "key_alias"),
        ({"temp_budget_increase": 1, "temp_budget_expiry": 1_893_456_000}, "temp_budget_expiry"),
        ({"temp_budget_increase": 1, "temp_budget_expiry": "2030-01-01"}, "temp_budget_expiry"),
    ]
    for body, param in cases:
        status, err = await api.post("/key/generate", body)
        assert status == 422 and err["error"]["param"] == param, (body, err)


async def test_empty_body_is_400_where_a_body_is_required(api: Api) -> None:
    for path in ("/key/generate", "/user/new", "/team/new", "/budget/new", "/key/delete"):
        status, err = await api.call("POST", path, content=b"")
        assert status == 400, (path, err)
        assert err["error"]["code"] == "missing_body" and set(err["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
    status, err = await api.call("POST", "/key/0123abcd/regenerate", content=b"")  # LiteLLM: body optional
    assert status == 404 and err["error"]["param"] == "key", err


async def test_a_query_parameter_given_twice_is_422(api: Api) -> None:
    status, err = await api.call("GET", "/key/list?page=1&page=2")
    assert status == 422 and err["error"]["param"] == "page", err


async def test_served_at_openapi_json(sqlite_api: Api) -> None:
    status, doc = await sqlite_api.get("/openapi.json", key=None)
    assert status == 200 and "/key/generate" in doc["paths"] and "/budget/list" in doc["paths"]


async def test_unknown_route_and_method_in_the_error_shape(sqlite_api: Api) -> None:
    status, err = await sqlite_api.get("/key/nowhere")
    assert status == 404 and err["error"]["code"] == "not_found"
    status, err = await sqlite_api.call("DELETE", "/key/generate")
    assert status == 405 and err["error"]["code"] == "method_not_allowed"

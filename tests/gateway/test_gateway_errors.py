"""The error contract (DESIGN §4): OpenAI-shaped errors with the right status, never a 500,
and the spendgate headers on every response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger

from spendgate.http.errors import render_error

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=20) as c:
        yield c


def _check(
    response: httpx.Response, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-spendgate-request-id"].startswith("req_")
    assert response.headers["x-spendgate-response-cost"] == "0"
    assert float(response.headers["x-spendgate-overhead-ms"]) >= 0
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert "Traceback" not in response.text
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return dict(error)


def test_malformed_json_is_400(http: httpx.Client) -> None:
    _check(http.post("/v1/chat/completions", content=b'{"model": "gpt-4o", ', headers=AUTH), 400)
    _check(http.post("/v1/chat/completions", content=b"[1, 2]", headers=AUTH), 400)
    _check(http.post("/v1/chat/completions", content=b"", headers=AUTH), 400)


def test_missing_model_is_422(http: httpx.Client) -> None:
    _check(http.post("/v1/chat/completions", json={"messages": []}, headers=AUTH), 422, "model")


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", 42), ("messages", "hello"), ("max_tokens", "ten"), ("stream", "yes"), ("temperature", "hot")],
)
def test_wrong_types_are_422(http: httpx.Client, field: str, value: object) -> None:
    _check(http.post("/v1/chat/completions", json={**CHAT, field: value}, headers=AUTH), 422, field)


def test_unknown_model_is_404_model_not_found(http: httpx.Client, client: openai.OpenAI) -> None:
    _check(
        http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-nope"}, headers=AUTH),
        404,
        "model",
        "model_not_found",
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nope", messages=CHAT["messages"])


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (1024 * 1024 + 10)}]}
    _check(http.post("/v1/chat/completions", json=big, headers=AUTH), 413)

    def chunks() -> Iterator[bytes]:  # no content-length: refused while reading
        yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}]}'

    _check(http.post("/v1/chat/completions", content=chunks(), headers=AUTH), 413)


def test_missing_or_unknown_key_is_401(
    http: httpx.Client, client: openai.OpenAI, gateway: GatewayServer
) -> None:
    _check(http.post("/v1/chat/completions", json=CHAT), 401)
    _check(http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-wrong"}), 401)
    with (
        openai.OpenAI(base_url=gateway.url, api_key="sk-wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.models.list()


def test_unknown_route_and_method(http: httpx.Client) -> None:
    _check(http.post("/v1/nothing-here", json={}, headers=AUTH), 404)
    _check(http.get("/v1/chat/completions", headers=AUTH), 405)


def test_upstream_client_error_is_passed_on_and_recorded(http: httpx.Client, ledger: Ledger) -> None:
    r = http.post("/v1/chat/completions", json=CHAT, headers={**AUTH, "x-mock-status": "400"})
    _check(r, 400)
    rows = ledger.operation(r.headers["x-spendgate-request-id"], 1)
    assert [(row["status"], row["cost_nanos"]) for row in rows] == [("error", 0)]  # not retried


def test_upstream_server_error_after_retries_is_502(http: httpx.Client, ledger: Ledger) -> None:
    r = http.post("/v1/chat/completions", json=CHAT, headers={**AUTH, "x-mock-status": "500"})
    _check(r, 502)
    rows = ledger.operation(r.headers["x-spendgate-request-id"], 2)
    assert [row["status"] for row in rows] == ["error", "error"]  # 1 try + 1 retry


def test_upstream_rate_limit_is_429(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-mock-status": "429", "x-mock-retry-after": "0"}
    )
    assert _check(r, 429)["type"] == "rate_limit_error"


def test_upstream_timeout_is_504(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions", json={**CHAT, "model": "slow"}, headers={**AUTH, "x-mock-hang": "1"}
    )
    _check(r, 504)


def test_unexpected_exception_is_a_generic_error_without_traceback() -> None:
    status, body, _ = render_error(RuntimeError("secret internals"))
    assert status == 500 and b"secret" not in body and b"internal_error" in body

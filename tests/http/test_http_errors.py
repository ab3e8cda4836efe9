"""The one error tree of the shared HTTP edge: status, OpenAI-shaped body and headers."""

from __future__ import annotations

import logging

import orjson
import pytest

from spendgate.errors import BudgetExceeded, RateLimited, StorageError
from spendgate.http.errors import Conflict, render_error


def test_conflict_is_a_409() -> None:
    status, body, headers = render_error(Conflict("the alias is taken"))
    assert status == 409 and headers == {}
    assert orjson.loads(body) == {
        "error": {
            "message": "the alias is taken",
            "type": "invalid_request_error",
            "param": None,
            "code": "conflict",
        }
    }


def test_a_storage_failure_is_a_503_limits_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "spendgate.gateway"):
        status, body, headers = render_error(StorageError("redis: connection refused"))
    assert status == 503 and headers == {}
    error = orjson.loads(body)["error"]
    assert {k: error[k] for k in ("type", "param", "code")} == {
        "type": "service_unavailable",
        "param": None,
        "code": "limits_unavailable",
    }
    assert "counter storage unavailable" in error["message"]
    assert "redis" not in error["message"]  # the backend's words stay in the log
    assert "connection refused" in caplog.text


def test_a_rate_limit_names_its_limit_and_wait() -> None:
    exc = RateLimited(scope="key:k", kind="tokens", limit=5000, window_seconds=60, retry_after=1.5)
    status, body, headers = render_error(exc)
    assert status == 429 and orjson.loads(body)["error"]["code"] == "rate_limit_exceeded"
    assert headers == {
        "retry-after": "2",
        "x-ratelimit-limit-tokens": "5000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1.5s",
    }
    never = RateLimited(scope="key:k", kind="parallel", limit=2, window_seconds=None, retry_after=None)
    assert render_error(never)[2] == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
    }


def test_a_budget_refusal_uses_the_configured_status() -> None:
    exc = BudgetExceeded(
        scope="key:k",
        window="1d",
        spend_nanos=10**9,
        reserved_nanos=0,
        limit_nanos=10**9,
        requested_nanos=62_500,
        reset_at=None,
        retry_after=30,
    )
    status, body, headers = render_error(exc, budget_status=402)
    assert status == 402 and headers == {"retry-after": "30"}
    error = orjson.loads(body)["error"]
    assert error["type"] == "budget_exceeded" and error["code"] == "402"
    assert "spend $1.00 + in flight $0.00 + this request $0.0000625 > limit $1.00" in error["message"]

"""Credentials on a request: the caller's key, trusted peers and the end-user header."""

from __future__ import annotations

import ipaddress

import pytest

from spendgate.http.credentials import (
    END_USER_HEADER,
    MAX_ID_CHARS,
    check_id,
    end_user_from_header,
    key_from_headers,
    trusted_peer,
)
from spendgate.http.errors import InvalidField

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


def test_the_key_comes_from_bearer_x_api_key_or_api_key() -> None:
    assert key_from_headers({"authorization": "Bearer sk-1 "}) == "sk-1"
    assert key_from_headers({"authorization": "Basic abc", "x-api-key": "sk-2"}) == "sk-2"
    assert key_from_headers({"api-key": "sk-3"}) == "sk-3"
    assert key_from_headers({"authorization": "Bearer  "}) is None
    assert key_from_headers({}) is None


def test_trusted_peer() -> None:
    assert trusted_peer("10.1.2.3", PROXIES)
    assert trusted_peer("::1", PROXIES)
    assert not trusted_peer("192.168.0.1", PROXIES)
    assert not trusted_peer("not-an-address", PROXIES)
    assert not trusted_peer(None, PROXIES)
    assert not trusted_peer("10.1.2.3", [])


def test_the_end_user_header_is_read_only_from_a_trusted_proxy() -> None:
    headers = {END_USER_HEADER: "cust-1"}
    assert end_user_from_header(headers, "10.0.0.5", PROXIES) == "cust-1"
    assert end_user_from_header(headers, "192.168.0.1", PROXIES) is None
    assert end_user_from_header(headers, None, PROXIES) is None
    assert end_user_from_header(headers, "10.0.0.5", []) is None
    assert end_user_from_header({END_USER_HEADER: ""}, "10.0.0.5", PROXIES) is None
    assert end_user_from_header({}, "10.0.0.5", PROXIES) is None


def test_a_too_long_end_user_is_a_422_naming_the_header() -> None:
    assert (
        end_user_from_header({END_USER_HEADER: "c" * MAX_ID_CHARS}, "10.0.0.5", PROXIES) == "c" * MAX_ID_CHARS
    )
    with pytest.raises(InvalidField) as raised:
        end_user_from_header({END_USER_HEADER: "c" * (MAX_ID_CHARS + 1)}, "10.0.0.5", PROXIES)
    assert raised.value.status == 422 and raised.value.param == END_USER_HEADER
    # From an untrusted peer the header is ignored, however long.
    assert end_user_from_header({END_USER_HEADER: "c" * 1000}, "192.168.0.1", PROXIES) is None


def test_check_id() -> None:
    check_id(None, "user")
    check_id(123, "user")
    check_id("u" * MAX_ID_CHARS, "user")
    with pytest.raises(InvalidField, match="'user' must be at most 255 characters"):
        check_id("u" * (MAX_ID_CHARS + 1), "user")

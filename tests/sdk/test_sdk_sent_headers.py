"""The metered path's short cuts through httpx's internals read and write what the public
API would: the request headers read over httpx's own lower-case names give what the plain
reading of ``raw`` gives; a header appended to httpx's list is what ``headers[name] = value``
sets; a URL's endpoint and ``api_base``, kept per URL, are those its path gives."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

from spendgate.sdk.httpx_compat import add_header
from spendgate.sdk.metering import _ENDPOINTS, _api_base, _sent_headers, _url_facts, endpoint_of

_CASES: list[list[tuple[str, str]]] = [
    [("Content-Type", "application/json"), ("X-Stainless-Lang", "python"), ("Content-Length", "2")],
    [("content-type", "application/json"), ("X-Spendgate-Metadata", '{"a": 1}')],
    [("X-SPENDGATE-Other", "1"), ("Accept", "*/*")],
    [("Content-Type", "a"), ("content-type", "b")],
    [("Content-Type", "text/plain; charset=caf\u00e9")],
    [],
]


class _RawOnly:
    """Headers without httpx's internal list: the fallback reads ``raw``."""

    def __init__(self, headers: Any) -> None:
        self._headers = headers
        self.raw = headers.raw
        self.encoding = headers.encoding

    def get(self, name: str, default: Any = None) -> Any:
        return self._headers.get(name, default)

    def __setitem__(self, name: str, value: str) -> None:
        self._headers[name] = value


@pytest.mark.parametrize("module", [httpx, httpx2])
@pytest.mark.parametrize("items", _CASES)
def test_fast_path_reads_as_raw(module: ModuleType, items: list[tuple[str, str]]) -> None:
    headers = module.Headers(items, encoding="utf-8")
    assert _sent_headers(headers) == _sent_headers(_RawOnly(headers))  # type: ignore[arg-type]
    expected = headers.get("content-type")
    assert _sent_headers(headers).content_type == expected
    assert _sent_headers(headers).ours == any(k.lower().startswith("x-spendgate-") for k, _ in items)


@pytest.mark.parametrize("module", [httpx, httpx2])
@pytest.mark.parametrize("items", _CASES)
def test_an_added_header_is_what_setting_it_gives(module: ModuleType, items: list[tuple[str, str]]) -> None:
    fast, plain = module.Headers(items, encoding="utf-8"), module.Headers(items, encoding="utf-8")
    add_header(fast, b"x-request-id", "spendgate-1")
    plain["x-request-id"] = "spendgate-1"
    assert fast.raw == plain.raw and fast == plain and fast.get("X-Request-Id") == "spendgate-1"
    other = module.Headers(items, encoding="utf-8")
    add_header(_RawOnly(other), b"x-request-id", "spendgate-1")  # type: ignore[arg-type]
    assert other == plain


_URLS = [
    "http://127.0.0.1:8090/v1/chat/completions",
    "https://api.openai.com/v1/chat/completions/",
    "https://x.test/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
    "http://a.test/v1/messages",
    "http://a.test/proxy/v1/embeddings?x=1",
    "http://a.test/v1/completions",
    "http://a.test/v1/files",
    "http://a.test/",
    "http://user:pw@a.test:8080/v1/responses",
]


def _expected(url: Any) -> tuple[str | None, str | None]:
    path = url.path.rstrip("/")
    for suffix, endpoint in _ENDPOINTS:
        if path.endswith(suffix):
            return endpoint, str(url.copy_with(path=path.removesuffix(suffix) or "/", query=None))
    return None, None


class _PlainURL:
    """A URL without httpx's parsed components: kept by its text."""

    def __init__(self, url: Any) -> None:
        self._url = url
        self.path = url.path

    def copy_with(self, **kwargs: Any) -> Any:
        return self._url.copy_with(**kwargs)

    def __str__(self) -> str:
        return str(self._url)


@pytest.mark.parametrize("module", [httpx, httpx2])
@pytest.mark.parametrize("text", _URLS)
def test_a_urls_endpoint_and_api_base_are_those_of_its_path(module: ModuleType, text: str) -> None:
    url = module.URL(text)
    expected = _expected(url)
    for _ in range(2):  # computed, then kept
        assert _url_facts(url) == expected
        assert _url_facts(_PlainURL(url)) == expected  # type: ignore[arg-type]
        assert endpoint_of(module.Request("POST", url)) == expected[0]
        assert endpoint_of(module.Request("GET", url)) is None
    if expected[0] is not None:
        assert _api_base(url, expected[0]) == expected[1]

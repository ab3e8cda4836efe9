"""The request headers the metered path reads: the fast path over httpx's own lower-case
names gives what the plain reading of ``raw`` gives."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

from spendgate.sdk.metering import _sent_headers

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


@pytest.mark.parametrize("module", [httpx, httpx2])
@pytest.mark.parametrize("items", _CASES)
def test_fast_path_reads_as_raw(module: ModuleType, items: list[tuple[str, str]]) -> None:
    headers = module.Headers(items, encoding="utf-8")
    assert _sent_headers(headers) == _sent_headers(_RawOnly(headers))  # type: ignore[arg-type]
    expected = headers.get("content-type")
    assert _sent_headers(headers).content_type == expected
    assert _sent_headers(headers).ours == any(k.lower().startswith("x-spendgate-") for k, _ in items)

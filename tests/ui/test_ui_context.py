"""The page number of a dashboard URL (``?page=``): anything but a positive number of ASCII
digits is page 1, never an error ("²".isdigit() is true, and int() refuses it)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from spendgate.ui.context import PageContext


@pytest.mark.parametrize(
    ("raw", "page"), [("3", 3), ("", 1), ("0", 1), ("-2", 1), ("²", 1), ("٣", 1), ("x", 1)]
)
def test_page_number(raw: str, page: int) -> None:
    scope = {"type": "http", "method": "GET", "path": "/ui/keys", "query_string": f"page={raw}".encode()}
    ctx = PageContext(Request(scope), None, None, {}, "UTC")  # type: ignore[arg-type]
    assert ctx.page_number() == page

"""Reading a request body within its size limit."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from spendgate.http.body import read_body
from spendgate.http.errors import PayloadTooLarge


def _request(chunks: list[bytes]) -> Request:
    pending = [*chunks]

    async def receive() -> dict[str, object]:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


async def test_the_body_is_read_whole() -> None:
    assert await read_body(_request([b"ab", b"cd", b"e"]), 5) == b"abcde"
    assert await read_body(_request([]), 5) == b""


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLarge, match="request body is 6 bytes; the limit is 5"):
        await read_body(_request([b"abcdef"]), 5, "6")
    assert await read_body(_request([b"abc"]), 5, "not-a-number") == b"abc"


async def test_a_body_over_the_limit_is_refused_while_reading() -> None:
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 5 bytes") as raised:
        await read_body(_request([b"abc", b"def"]), 5, None)
    assert raised.value.status == 413

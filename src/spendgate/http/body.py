"""Reading a request body within a size limit, for every route that takes one.

A body over the limit is refused with 413 as early as possible: at once when its declared
``content-length`` says so, else as soon as the bytes read pass the limit (never buffered
whole first).
"""

from __future__ import annotations

from starlette.requests import Request

from spendgate.http.errors import PayloadTooLarge

__all__ = ["read_body"]


async def read_body(request: Request, limit: int, declared: str | None = None) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes
    (``declared``: its ``content-length``, if given)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

"""The upstream clients against tiny raw servers: keep-alive reuse, a stale connection
retried once (FastClient), chunked and close-delimited bodies, timeouts and refused
connections; and the gateway end to end with ``upstream_http_client: aiohttp``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, free_port, make_config

from spendgate.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from spendgate.providers.http import AiohttpClient, FastClient, UpstreamRequest
from spendgate.providers.mock import MockServer
from spendgate.providers.transport import upstream_errors

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class Server:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.reply(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _serve(reply: Reply) -> AsyncIterator[tuple[Server, str]]:
    server = Server(reply)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server, f"http://127.0.0.1:{port}"


def _request(url: str, timeout: float = 5) -> UpstreamRequest:
    return UpstreamRequest("POST", f"{url}/v1/x?q=1", {"content-type": "application/json"}, b"{}", timeout, 2)


async def test_keep_alive_reuses_one_connection() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_request(reader)
            assert request.startswith(b"POST /v1/x?q=1 HTTP/1.1\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    async for server, url in _serve(reply):
        client = FastClient()
        for _ in range(3):
            response = await client.send(_request(url))
            assert response.status_code == 200 and await response.aread() == b"ok"
        await client.aclose()
        assert server.connections == 1


async def test_stale_keep_alive_connection_is_retried_once_on_a_new_one() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await _read_request(reader)  # the next request on this connection: hang up unanswered

    async for server, url in _serve(reply):
        client = FastClient()
        assert await (await client.send(_request(url))).aread() == b"ok"
        assert await (await client.send(_request(url))).aread() == b"ok"
        assert server.connections == 2
        await client.aclose()


async def test_chunked_and_close_delimited_bodies() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async for _server, url in _serve(reply):
        client = FastClient()
        assert [c async for c in (await client.send(_request(url))).aiter_bytes()] == [b"abc", b"de"]
        assert await (await client.send(_request(url))).aread() == b"until the end"
        await client.aclose()


async def test_read_timeout_and_refused_connection() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async for _server, url in _serve(reply):
        with pytest.raises(httpx.ReadTimeout):
            await FastClient().send(_request(url, timeout=0.1))
    with pytest.raises(httpx.ConnectError):
        await FastClient().send(_request(f"http://127.0.0.1:{free_port()}"))


async def test_server_dropping_mid_body_is_a_protocol_error() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        await writer.drain()

    async for _server, url in _serve(reply):
        response = await FastClient().send(_request(url))
        with pytest.raises(httpx.RemoteProtocolError):
            await response.aread()


# -- AiohttpClient (general_settings.upstream_http_client: aiohttp) ------------------------------
# The same raw servers; errors are asserted as spendgate's, through the one mapping place.


async def _aiohttp_send(request: UpstreamRequest) -> bytes:
    client = AiohttpClient()
    try:
        with upstream_errors("test"):
            return await (await client.send(request)).aread()
    finally:
        await client.aclose()


async def test_aiohttp_keep_alive_reuses_one_connection_and_sends_no_surprises() -> None:
    seen: list[bytes] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_request(reader)
            seen.append(request)
            # A cookie and a redirect: neither may be followed nor carried to the next request.
            writer.write(
                b"HTTP/1.1 200 OK\r\nset-cookie: tenant=a\r\ncontent-encoding: gzip\r\n"
                b"content-length: 2\r\n\r\nok"
            )

    async for server, url in _serve(reply):
        client = AiohttpClient()
        for _ in range(3):
            response = await client.send(_request(url))
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            assert await response.aread() == b"ok"  # not decompressed: passed through as sent
        await client.aclose()
        assert server.connections == 1
    assert all(r.startswith(b"POST /v1/x?q=1 HTTP/1.1\r\n") for r in seen)
    heads = [r.lower() for r in seen]
    assert all(b"accept-encoding: identity\r\n" in h and b"content-length: 2\r\n" in h for h in heads)
    assert not any(b"cookie:" in h for h in heads)


async def test_aiohttp_does_not_follow_redirects() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n")

    async for server, url in _serve(reply):
        client = AiohttpClient()
        response = await client.send(_request(url))
        assert response.status_code == 307 and response.headers["location"] == "/elsewhere"
        await response.aclose()
        await client.aclose()
        assert server.connections == 1


async def test_aiohttp_chunked_close_delimited_and_streamed_bodies() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"2\r\nde\r\n0\r\n\r\n")
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async for _server, url in _serve(reply):
        client = AiohttpClient()
        chunks = [c async for c in (await client.send(_request(url))).aiter_bytes()]
        assert b"".join(chunks) == b"abcde" and len(chunks) == 2
        assert await (await client.send(_request(url))).aread() == b"until the end"
        await client.aclose()


async def test_aiohttp_timeouts_refusals_and_cut_bodies_are_spendgate_errors() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        await writer.drain()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)

    async for _server, url in _serve(slow):
        with pytest.raises(UpstreamTimeout):
            await _aiohttp_send(_request(url, timeout=0.1))
    with pytest.raises(UpstreamConnectError):
        await _aiohttp_send(_request(f"http://127.0.0.1:{free_port()}"))
    async for _server, url in _serve(cut):
        with pytest.raises(UpstreamError) as caught:
            await _aiohttp_send(_request(url))
        assert caught.value.retryable and type(caught.value) is UpstreamError
    async for _server, url in _serve(hang_up):
        with pytest.raises(UpstreamError) as caught:
            await _aiohttp_send(_request(url))
        assert caught.value.retryable


async def test_aiohttp_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()  # then close while idle (the server's keep-alive timeout)

    async for server, url in _serve(reply):
        client = AiohttpClient()
        assert await (await client.send(_request(url))).aread() == b"ok"
        await asyncio.sleep(0.1)
        assert await (await client.send(_request(url))).aread() == b"ok"
        assert server.connections == 2
        await client.aclose()


def test_gateway_with_the_aiohttp_upstream_client(mock_server: MockServer, tmp_path: Path) -> None:
    config = make_config(
        mock_server.base_url,
        tmp_path / "spendgate.db",
        tmp_path / "journal",
        general_settings={"upstream_http_client": "aiohttp"},
    )
    server = GatewayServer(config).start()
    try:
        with openai.OpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as client:
            reply = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            assert reply.usage is not None and reply.usage.completion_tokens > 0
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True
            )
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        rows = Ledger(tmp_path / "spendgate.db").wait(2)
        assert [r["status"] for r in rows] == ["success", "success"]
    finally:
        server.stop()

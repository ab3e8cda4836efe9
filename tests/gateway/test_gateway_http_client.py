"""The upstream clients against tiny raw servers: keep-alive reuse, one release per
connection (a half-read answer is closed, never pooled), chunked and close-delimited
bodies, timeouts and refused connections, proxies from the environment; the config's
client choice; and the gateway end to end on each client."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

import h2.config
import h2.connection
import h2.events
import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, free_port, make_config

from spendgate.config import parse_config
from spendgate.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from spendgate.providers.http import (
    AiohttpClient,
    HttpxClient,
    UpstreamClient,
    UpstreamRequest,
    make_upstream_client,
)
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


# -- AiohttpClient (the default) ----------------------------------------------------------------
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


# -- one owner of each connection's release, on both clients --------------------------------------

CLIENTS = ["aiohttp", "httpx"]


async def _echo_marker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request on the connection with its ``q`` marker, in two chunks."""
    while True:
        request = await _read_request(reader)
        marker = request.split(b" ", 2)[1].partition(b"q=")[2]
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(marker), marker))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"1\r\n.\r\n0\r\n\r\n")
        await writer.drain()


def _marked(url: str, marker: str) -> UpstreamRequest:
    return UpstreamRequest(
        "POST", f"{url}/v1/x?q={marker}", {"content-type": "application/json"}, b"{}", 5, 2
    )


async def _ask(client: UpstreamClient, url: str, marker: str) -> bytes:
    return await (await client.send(_marked(url, marker))).aread()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_streamed_answer_releases_its_connection_once(kind: Literal["aiohttp", "httpx"]) -> None:
    # The relay iterates the body to its end and then closes the response (twice here, as a
    # careless owner might): the connection must enter the pool once, so the next two
    # concurrent requests cannot both be given it.
    async for server, url in _serve(_echo_marker):
        client = make_upstream_client(kind)
        response = await client.send(_marked(url, "first"))
        assert b"".join([c async for c in response.aiter_bytes()]) == b"first."
        await response.aclose()
        await response.aclose()
        answers = await asyncio.gather(_ask(client, url, "second"), _ask(client, url, "third"))
        assert list(answers) == [b"second.", b"third."]
        assert server.connections == 2
        await client.aclose()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_half_read_answer_is_closed_never_pooled(kind: Literal["aiohttp", "httpx"]) -> None:
    async for server, url in _serve(_echo_marker):
        client = make_upstream_client(kind)
        response = await client.send(_marked(url, "cut"))
        async for chunk in response.aiter_bytes():
            assert chunk == b"cut"
            break  # the client went away mid-answer
        await response.aclose()
        # aread cancelled mid-body (a cancelled request) closes the connection too
        reading = asyncio.ensure_future((await client.send(_marked(url, "cancelled"))).aread())
        await asyncio.sleep(0.005)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert await (await client.send(_marked(url, "next"))).aread() == b"next."
        assert server.connections == 3  # the rest of "cut" and "cancelled" reached no one
        await client.aclose()


# -- proxies from the environment ----------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
async def test_proxies_come_from_the_environment(
    kind: Literal["aiohttp", "httpx"], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        seen.append(request.split(b"\r\n", 1)[0])
        if request.startswith(b"CONNECT "):
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nproxied")
        await writer.drain()

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    async for _proxy, proxy_url in _serve(proxy):
        async for direct, url in _serve(_echo_marker):
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            monkeypatch.setenv("HTTPS_PROXY", proxy_url)
            monkeypatch.setenv("NO_PROXY", "localhost,direct.example")
            client = make_upstream_client(kind)
            try:
                plain = await client.send(_marked("http://api.example.test:8000", "1"))
                assert await plain.aread() == b"proxied"
                with pytest.raises(UpstreamConnectError), upstream_errors("test"):
                    await client.send(_marked("https://api.example.test", "1"))  # tunnel refused
            finally:
                await client.aclose()
            assert seen == [
                b"POST http://api.example.test:8000/v1/x?q=1 HTTP/1.1",
                b"CONNECT api.example.test:443 HTTP/1.1",
            ]
            # NO_PROXY: straight to the host
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            client = make_upstream_client(kind)
            try:
                assert await (await client.send(_marked(url, "direct"))).aread() == b"direct."
            finally:
                await client.aclose()
            assert direct.connections == 1 and len(seen) == 2


# -- the choice in the config, and the gateway on each client ------------------------------------


def test_the_removed_fast_client_is_read_as_aiohttp_with_a_warning() -> None:
    raw = {"model_list": [], "general_settings": {"upstream_http_client": "fast"}}
    config = parse_config(raw, environ={})
    assert config.general_settings.upstream_http_client == "aiohttp"
    assert any("upstream_http_client" in w and "'fast' was removed" in w for w in config.warnings)
    assert parse_config({"model_list": []}, environ={}).general_settings.upstream_http_client == "aiohttp"


async def test_the_client_is_httpx_for_http2_or_an_injected_transport() -> None:
    default = make_upstream_client()
    assert isinstance(default, AiohttpClient)
    await default.aclose()
    for client in (
        make_upstream_client("httpx"),
        make_upstream_client(http2=True),
        make_upstream_client(transport=httpx.MockTransport(lambda request: httpx.Response(204))),
    ):
        assert isinstance(client, HttpxClient)
        await client.aclose()


async def _h2_serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A tiny HTTP/2-only server (the h2 library): answers each stream with its path."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    paths: dict[int, bytes] = {}
    while data := await reader.read(65536):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                paths[event.stream_id] = dict(event.headers)[b":path"]
            elif isinstance(event, h2.events.StreamEnded):
                body = b"h2 " + paths.pop(event.stream_id)
                conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
                conn.send_data(event.stream_id, body, end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
    writer.close()


async def test_http2_is_spoken_with_an_upstream_that_offers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    tls.set_alpn_protocols(["h2"])  # HTTP/2 only: an HTTP/1.1 request would fail
    listener = await asyncio.start_server(_h2_serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's certificate
    async with listener:
        client = make_upstream_client(http2=True)
        try:
            answers = await asyncio.gather(
                *(_ask(client, f"https://localhost:{port}", str(i)) for i in range(3))
            )
        finally:
            await client.aclose()
    assert list(answers) == [f"h2 /v1/x?q={i}".encode() for i in range(3)]


@pytest.mark.parametrize(
    "settings",
    [{}, {"upstream_http_client": "httpx"}, {"upstream_http2": True}],
    ids=["aiohttp", "httpx", "http2"],
)
def test_gateway_on_each_upstream_client(
    settings: dict[str, object], mock_server: MockServer, tmp_path: Path
) -> None:
    config = make_config(
        mock_server.base_url, tmp_path / "spendgate.db", tmp_path / "journal", general_settings=settings
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

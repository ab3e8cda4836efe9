"""A TCP proxy that injects network faults, for outage tests and the reliability runs.

Put it between a client and a real service (PostgreSQL, Redis, an upstream) and switch its
mode while traffic flows::

    with FaultProxy("127.0.0.1", 5432) as proxy:       # listens on 127.0.0.1:<free port>
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/test"
        ...
        proxy.cut()          # refuse: open connections are reset, new ones closed at once
        proxy.blackhole()    # drop: connections are accepted, nothing is forwarded or answered
        proxy.restore()      # pass: forward both ways again (new connections)

Modes:

- ``pass``: bytes are forwarded both ways.
- ``cut``: like a stopped server or a firewall that rejects: every open connection is
  reset (RST) and every new connection is closed as soon as it is accepted.
- ``blackhole``: like a network that drops packets: open connections stay open but
  nothing more is forwarded either way, and new connections are accepted and never
  answered. Clients hang unless they bound their waits.

Leaving ``cut`` or ``blackhole`` does not revive the connections they broke (as after a
real outage, clients must reconnect); a blackholed connection is reset when the mode
changes, as a stateful firewall would eventually do.

The proxy runs its own event loop in a daemon thread, so it works the same under
synchronous tests, ``pytest-asyncio`` tests and scripts (``reliability/db_outage.py``).

:class:`RedisServer` is the other fault: a private ``redis-server`` on a free port that a
test can stop and start again (never the shared one on 6379).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Literal

__all__ = ["FaultProxy", "Mode", "RedisServer", "free_port"]

Mode = Literal["pass", "cut", "blackhole"]

_CHUNK = 64 * 1024


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a refusing peer or firewall does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port`` with a fault mode.

    Args:
        target_host, target_port: the real service.
        port: where to listen (0: a free port, see :attr:`port`).
    """

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._mode: Mode = "pass"
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._wake = asyncio.Event()
        self.accepted = 0
        """Connections accepted so far (all modes)."""

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: where clients connect."""
        return f"127.0.0.1:{self.port}"

    # -- modes ---------------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; returns once open connections are dealt with (see module docstring)."""
        if mode not in ("pass", "cut", "blackhole"):
            raise ValueError(f"unknown mode {mode!r}")
        asyncio.run_coroutine_threadsafe(self._switch(mode), self._loop).result(10)

    def cut(self) -> None:
        self.set_mode("cut")

    def blackhole(self) -> None:
        self.set_mode("blackhole")

    def restore(self) -> None:
        self.set_mode("pass")

    # -- inside the proxy's loop -------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._requested_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        self._wake.set()

    async def _switch(self, mode: Mode) -> None:
        old, self._mode = self._mode, mode
        if mode == "cut" or old == "blackhole":
            self._reset_all()
        # Wake connections parked by a blackhole so they see the new mode.
        self._wake.set()
        self._wake = asyncio.Event()

    def _reset_all(self) -> None:
        for client, upstream in list(self._conns):
            _reset(client)
            if upstream is not None:
                _reset(upstream)
        self._conns.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._mode == "cut":
            _reset(writer)
            return
        if self._mode == "blackhole":
            entry: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
            self._conns.add(entry)
            await self._wake.wait()  # answered never: reset when the mode changes
            self._conns.discard(entry)
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        entry = (writer, up_writer)
        self._conns.add(entry)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._conns.discard(entry)
            for w in (writer, up_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                while self._mode == "blackhole":  # hold the bytes: nothing gets through
                    await self._wake.wait()
                if self._mode == "cut":
                    break
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
        finally:
            # One side ended: end the other (a half-open relay would leave the peer waiting).
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private ``redis-server`` (no persistence) on ``127.0.0.1:<free port>``.

    ``stop()`` kills it (SIGTERM, as a restart or a crash of the service does: every client
    connection is closed), ``start()`` starts it again on the same port, empty.
    """

    def __init__(self, port: int | None = None, *, workdir: str | Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (needed for the Redis restart tests)")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = str(workdir) if workdir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self._proc = subprocess.Popen(
            args, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

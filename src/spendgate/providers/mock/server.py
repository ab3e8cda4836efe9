"""Run the mock provider on a real loopback port in a background thread (tests, demos).

Example::

    with run_mock_provider(latency_ms=20) as mock:
        client = openai.OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[...])
        assert mock.stats()["max_in_flight"] == 1
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from spendgate.providers.mock.app import MockProvider
from spendgate.providers.mock.options import MockOptions

__all__ = ["MockServer", "run_mock_provider"]


class MockServer:
    """A running mock provider. Use :func:`run_mock_provider` to start one.

    Attributes:
        app: the live app (its ``stats``, ``faults``, ``files``, ``batches``).
        host, port: where it listens.
        url: the OpenAI base URL, ``http://127.0.0.1:<port>/v1``.
        base_url: the same without ``/v1`` (what the Anthropic SDK takes).
    """

    def __init__(self, app: MockProvider, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}"
        self.url = f"{self.base_url}/v1"
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=5,
            proxy_headers=False,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"mock-provider:{self.port}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admin = httpx.Client(base_url=self.base_url, timeout=10)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._socket])

        # uvloop when installed, without touching the global event loop policy.
        factory = self._server.config.get_loop_factory()
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve())

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the port accepts requests."""
        self._thread.start()
        for _ in range(int(timeout / 0.01)):
            if self._server.started:
                return
            if not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("the mock provider did not start")

    def stop(self) -> None:
        """End hanging requests, then shut down gracefully and join the thread."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.app.close)
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._admin.close()
        self._socket.close()

    def stats(self) -> dict[str, Any]:
        """``GET /mock/stats``."""
        return dict(self._admin.get("/mock/stats").raise_for_status().json())

    def reset(self) -> None:
        """``POST /mock/reset``: zero the counters, drop queued faults and recorded requests."""
        self._admin.post("/mock/reset").raise_for_status()

    def queue_faults(self, *faults: Mapping[str, Any]) -> None:
        """``POST /mock/faults``: e.g. ``queue_faults({"status": 503, "times": 2, "model": "gpt-4o"})``."""
        self._admin.post("/mock/faults", json={"faults": [dict(f) for f in faults]}).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        """``GET /mock/requests``: the recent requests (path, api_key, model, x-mock headers, body)."""
        return list(self._admin.get("/mock/requests").raise_for_status().json()["data"])


@contextmanager
def run_mock_provider(host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[MockServer]:
    """Run a mock provider on ``host:port`` (0: an ephemeral port) for the ``with`` block.

    Args:
        host: the interface (loopback by default).
        port: the port; 0 picks a free one.
        **options: :class:`MockOptions` fields, e.g. ``latency_ms=50``, ``batch_polls=3``.
    """
    server = MockServer(MockProvider(MockOptions(**options)), host, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()

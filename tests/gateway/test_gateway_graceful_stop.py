"""A graceful stop that runs out of time: the requests still running end cleanly.

``spendgate serve --graceful-timeout 1`` is stopped with SIGTERM while a slow non-streamed
call and a slow stream are in flight (the mock provider holds them). When the timeout
passes, uvicorn cancels both: the non-streamed call gets a JSON 503 ``shutting_down`` in
the documented error shape (not uvicorn's plain-text 500), the stream ends with an error
event (not a cut connection) and is billed as partial, the non-streamed call is billed its
prompt estimate as cancelled, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import openai
import pytest
from gateway_helpers import MASTER_KEY, Ledger, free_port, serve, serve_config
from openai.types.chat import ChatCompletionMessageParam

from spendgate.providers.mock import MockServer


async def test_requests_past_the_graceful_timeout_get_a_json_503_or_an_ended_stream(
    mock: MockServer, tmp_path: Path
) -> None:
    db = tmp_path / "spendgate.db"
    # forward_client_headers: the x-mock-* delays reach the mock
    config = serve_config(tmp_path, mock.base_url, forward_client_headers_to_llm_api=True)
    port = free_port()
    log = tmp_path / "gateway.log"
    proc = serve(config, port, log, "--graceful-timeout", "1")
    try:
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
        ) as client:
            messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "take your time"}]
            slow = asyncio.ensure_future(
                client.chat.completions.create(
                    model="gpt-4o",
                    messages=messages,
                    max_tokens=5,
                    extra_headers={"x-mock-hang": "1"},
                )
            )
            stream = await client.chat.completions.create(
                model="gpt-4o",
                messages=messages,
                max_tokens=40,
                stream=True,
                extra_headers={"x-mock-chunk-delay-ms": "500"},
            )
            chunks = aiter(stream)
            first = await anext(chunks)
            proc.send_signal(signal.SIGTERM)
            received = [first]
            with pytest.raises(openai.APIError) as ended:
                async for chunk in chunks:
                    received.append(chunk)
            assert "shutting down" in ended.value.message
            assert len(received) < 40  # cut short by the stop, not finished
            with pytest.raises(openai.APIStatusError) as refused:
                await slow
        assert refused.value.status_code == 503
        assert refused.value.response.headers["content-type"] == "application/json"
        body = refused.value.body
        assert isinstance(body, dict) and isinstance(body.pop("message"), str)
        assert body == {"type": "service_unavailable", "param": None, "code": "shutting_down"}
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The stop closed both upstream calls (the mock sees them go away).
    deadline = time.monotonic() + 5
    while mock.stats()["in_flight"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert mock.stats()["in_flight"] == 0
    text = log.read_text()
    assert "Exception in ASGI application" not in text, text[-3000:]
    # Both calls reached the provider, which bills them: the stream for what it produced,
    # the non-streamed call for its prompt (an estimate: it never answered).
    rows = Ledger(db).rows()
    assert sorted(row["status"] for row in rows) == ["cancelled", "partial"]
    cancelled = next(row for row in rows if row["status"] == "cancelled")
    assert cancelled["estimated"] and cancelled["input_tokens"] > 0 and cancelled["cost_nanos"] > 0

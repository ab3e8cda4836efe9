"""Raw keys never reach the access log: ``spendgate serve --access-log`` (two worker
processes, as deployed) in front of key URLs LiteLLM clients use, its output read back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from gateway_helpers import MASTER_KEY, free_port, serve, serve_config

from spendgate.providers.mock import MockServer

_OPTIONS = ("--workers", "2", "--access-log", "--log-level", "info")


def test_keys_in_urls_are_redacted_in_the_access_log(mock_server: MockServer, tmp_path: Path) -> None:
    config = serve_config(tmp_path, mock_server.base_url)
    port, log = free_port(), tmp_path / "serve.log"
    proc = serve(config, port, log, *_OPTIONS)
    raw_keys: list[str] = []
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {MASTER_KEY}"}
        ) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    if http.get("/health/readiness", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            custom = "sk-custom-0123456789abcdefghij"
            raw_keys += [http.post("/key/generate", json={}).json()["key"], custom]
            assert http.post("/key/generate", json={"key": custom}).status_code == 200
            for raw in raw_keys:
                assert http.get("/key/info", params={"key": raw}).status_code == 200
            regenerated = http.post(f"/key/{raw_keys[0]}/regenerate", json={})
            assert regenerated.status_code == 200, regenerated.text
            raw_keys.append(regenerated.json()["key"])
            # Refused (an unknown field), still logged, still redacted.
            assert http.get("/key/info", params={"api_key": "x", "key": raw_keys[-1]}).status_code == 422
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = log.read_text()
    assert "GET /key/info?key=[redacted] HTTP/1.1" in text, text[-3000:]
    assert "POST /key/[redacted]/regenerate HTTP/1.1" in text, text[-3000:]
    assert "/key/info?api_key=[redacted]&key=[redacted]" in text
    for raw in (*raw_keys, MASTER_KEY):
        assert raw not in text and raw[3:] not in text

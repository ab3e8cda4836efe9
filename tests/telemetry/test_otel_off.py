"""OpenTelemetry off (the default) costs nothing: a gateway process that served a request has
not imported the SDK, the exporter, or spendgate's OpenTelemetry module; turned on, the same
process has (so the check can fail)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from otlp_receiver import OtlpReceiver

from spendgate.providers.mock import MockServer

GATEWAY_TESTS = Path(__file__).resolve().parents[1] / "gateway"

_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import httpx
from gateway_helpers import MASTER_KEY, GatewayServer, make_config

config = make_config(sys.argv[2], __import__("pathlib").Path(sys.argv[3]) / "db.sqlite",
                     __import__("pathlib").Path(sys.argv[3]) / "journal", **json.loads(sys.argv[4]))
with GatewayServer(config) as server:
    answer = httpx.post(f"{server.url}/chat/completions", timeout=20,
                        headers={"authorization": f"Bearer {MASTER_KEY}"},
                        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "spendgate.telemetry")))))
"""


def _modules_after_a_request(mock: MockServer, tmp_path: Path, overrides: dict[str, Any]) -> list[str]:
    args = [str(GATEWAY_TESTS), mock.base_url, str(tmp_path), json.dumps(overrides)]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_off_imports_nothing_of_opentelemetry(mock_server: MockServer, tmp_path: Path) -> None:
    modules = _modules_after_a_request(mock_server, tmp_path, {})
    assert not [m for m in modules if m.startswith("opentelemetry")]
    assert "spendgate.telemetry.otel" not in modules


def test_on_imports_the_sdk(mock_server: MockServer, receiver: OtlpReceiver, tmp_path: Path) -> None:
    modules = _modules_after_a_request(
        mock_server, tmp_path, {"general_settings": {"otel": {"endpoint": receiver.url}}}
    )
    assert {"spendgate.telemetry.otel", "opentelemetry.sdk.trace"} <= set(modules)
    assert len(receiver.spans()) == 1

"""Issue #12 end to end: batches through ``spendgate serve`` with the official SDKs.

Real processes only: the mock provider (``spendgate mock-provider``) and the gateway
(``spendgate serve --config …`` on its default SQLite ledger) run as subprocesses; the
clients are the official ``openai`` and ``anthropic`` SDKs with a virtual key that belongs
to a user in a team, each with a budget. A batch is uploaded and created through the SDK,
polled to settlement with ``POST /batches/poll``, and its output downloaded through the
SDK; the test prices every output line itself with ``spendgate.completion_cost(…,
batch=True, at=<billing time>)`` and demands that the key's, the user's and the team's
spend each rose by exactly that sum, to the nano-USD, in the ledger and in the counters
(``/budget/explain``), that further polls and retrieves never bill again, that the settled
retrieve carries the bill in ``x-spendgate-response-cost``, and (OpenAI) that all of it
still holds after the gateway process is restarted.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml
from gateway_helpers import MASTER_KEY, Ledger, free_port, serve, wait_answering
from limits_helpers import ADMIN, Admin

import spendgate
from batch_test_helpers import price_output
from spendgate.core.money import NANOS_PER_USD, to_nano

__all__: list[str] = []

OPENAI_LINES = 500
ANTHROPIC_REQUESTS = 100
EXTRA_POLLS = 20
EXTRA_RETRIEVES = 50
SCOPES = ("key", "user", "team")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit code (a graceful stop flushes the spend recorder)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@dataclass(frozen=True)
class Tenant:
    """A user in a team, and a key of that user in that team (ledger rows name it by id)."""

    raw_key: str
    key_id: str
    user: str
    team: str


class Processes:
    """The mock provider and the gateway, both ``spendgate`` subprocesses."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "spendgate.db"
        spendgate_bin = Path(sys.executable).with_name("spendgate")
        mock_port = free_port()
        self.mock_log = tmp / "mock.log"
        with self.mock_log.open("wb") as out:
            self.mock = subprocess.Popen(
                [str(spendgate_bin), "mock-provider", "--port", str(mock_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.mock_url = f"http://127.0.0.1:{mock_port}"
        wait_answering(f"{self.mock_url}/mock/stats", self.mock, self.mock_log, timeout=30)
        self.config = tmp / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "model_list": [
                        {
                            "model_name": "gpt-4o",
                            "litellm_params": {"model": "openai/gpt-4o", "api_base": self.mock_url},
                        },
                        {
                            "model_name": "claude-sonnet-4-6",
                            "litellm_params": {
                                "model": "anthropic/claude-sonnet-4-6",
                                "api_base": self.mock_url,
                            },
                        },
                    ],
                    "general_settings": {
                        "master_key": MASTER_KEY,
                        "database_url": f"sqlite+aiosqlite:///{self.db}",
                        "journal_dir": str(tmp / "journal"),
                        # Only POST /batches/poll runs cycles (the job's would race nothing
                        # but the claim; the test decides when a cycle runs).
                        "batch_poll_interval_seconds": 3600,
                        # A team key is charged to its owner's budget too only with this (as
                        # LiteLLM): then the user's window is a counter /budget/explain shows.
                        "apply_user_budget_to_team_keys": True,
                    },
                }
            )
        )
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.starts = 0
        self.gateway = self._start_gateway()

    def _start_gateway(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        return serve(
            self.config, self.port, self.tmp / f"gateway-{self.starts}.log", "--log-level", "warning"
        )

    def restart_gateway(self) -> None:
        """SIGTERM the gateway and start it again on the same config, DB and journal."""
        code = _stop(self.gateway)
        assert code in (0, -signal.SIGTERM), (code, self.gateway_log())
        self.gateway = self._start_gateway()

    def gateway_log(self) -> str:
        return (self.tmp / f"gateway-{self.starts}.log").read_text()[-3000:]

    def poll(self) -> dict[str, Any]:
        """One batch-cost cycle now (``POST /batches/poll``, master key)."""
        r = httpx.post(f"{self.base_url}/batches/poll", headers=ADMIN, timeout=60)
        assert r.status_code == 200, (r.status_code, r.text)
        out: dict[str, Any] = r.json()
        assert out["errors"] == 0, (out, self.gateway_log())
        return out

    def openai_client(self, who: Tenant) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=who.raw_key, max_retries=0, timeout=60)

    def anthropic_client(self, who: Tenant) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key=who.raw_key, max_retries=0, timeout=60)

    def close(self) -> None:
        for proc in (self.gateway, self.mock):
            if proc.poll() is None:
                _stop(proc)


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    p = Processes(tmp_path_factory.mktemp("batches-sdk"))
    try:
        yield p
    finally:
        p.close()


def _tenant(procs: Processes, name: str) -> Tenant:
    """A fresh user, team and key, each with its own budget (so each has a counter)."""
    user, team = f"{name}-user", f"{name}-team"
    with Admin(procs.base_url) as admin:
        admin.post("/user/new", {"user_id": user, "auto_create_key": False, "max_budget": 100})
        admin.post(
            "/team/new",
            {"team_id": team, "max_budget": 200, "members_with_roles": [{"role": "user", "user_id": user}]},
        )
        created = admin.post("/key/generate", {"user_id": user, "team_id": team, "max_budget": 50})
    return Tenant(str(created["key"]), str(created["token"]), user, team)


def _usd_to_nanos(value: Any) -> int:
    exact = Decimal(str(value)) * NANOS_PER_USD
    assert exact == exact.to_integral_value(), value
    return int(exact)


def _counters(procs: Processes, raw_key: str) -> dict[str, tuple[int, int]]:
    """(spend, reserved) in nano-USD of the key's, its user's and its team's windows, from
    ``/budget/explain`` (its USD numbers are exact decimals: parsed as Decimal)."""
    r = httpx.post(f"{procs.base_url}/budget/explain", headers=ADMIN, json={"key": raw_key}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    body = json.loads(r.content, parse_float=Decimal)
    out: dict[str, tuple[int, int]] = {}
    for window in body["windows"]:
        kind = window["scope_type"]
        if kind in SCOPES:
            assert kind not in out, body  # one (lifetime) window per scope here
            out[kind] = (_usd_to_nanos(window["spend"]), _usd_to_nanos(window["reserved"]))
    assert sorted(out) == sorted(SCOPES), body
    return out


def _ledger(procs: Processes, who: Tenant) -> tuple[dict[str, int], list[str]]:
    """The ledger's spend per scope (its rows summed) and the key's event ids, once the
    key has a row (the recorder writes behind)."""
    ledger = Ledger(procs.db)
    rows = ledger.wait(1, "api_key = ?", (who.key_id,))
    spend = {
        "key": sum(int(r["cost_nanos"]) for r in rows),
        "user": sum(int(r["cost_nanos"]) for r in ledger.rows("user_id = ?", (who.user,))),
        "team": sum(int(r["cost_nanos"]) for r in ledger.rows("team_id = ?", (who.team,))),
    }
    return spend, sorted(str(r["event_id"]) for r in rows)


def _assert_billed(procs: Processes, who: Tenant, bill: int, event: str) -> None:
    """Exactly one event, and ``bill`` spent (nothing reserved) at key, user and team, in
    the ledger and in the counters."""
    spend, ids = _ledger(procs, who)
    assert ids == [event]
    assert spend == dict.fromkeys(SCOPES, bill)
    assert _counters(procs, who.raw_key) == dict.fromkeys(SCOPES, (bill, 0))


def _assert_only_reserved(procs: Processes, who: Tenant) -> None:
    """The batch's worst case is held at every scope, nothing spent yet."""
    reserved = _counters(procs, who.raw_key)
    assert all(spend == 0 and held > 0 for spend, held in reserved.values()), reserved


def _assert_never_billed_again(
    procs: Processes, who: Tenant, bill: int, event: str, retrieve: Callable[[], Any], batch_id: str
) -> None:
    """More cycles and retrieves (``retrieve()``: the settled batch's raw SDK response) bill
    nothing; each retrieve carries the bill in ``x-spendgate-response-cost``."""
    for _ in range(EXTRA_POLLS):
        assert procs.poll()["settled"] == 0
    for _ in range(EXTRA_RETRIEVES):
        raw = retrieve()
        assert raw.parse().id == batch_id
        assert _usd_to_nanos(raw.headers["x-spendgate-response-cost"]) == bill
    _assert_billed(procs, who, bill, event)


def _openai_jsonl() -> bytes:
    lines = []
    for i in range(OPENAI_LINES):
        words = " ".join(f"word{j}" for j in range(i % 37 + 1))
        messages = [{"role": "user", "content": f"request {i}: {words}"}]
        if i % 5 == 0:
            messages.insert(0, {"role": "system", "content": "be brief " * (i % 11 + 1)})
        lines.append(
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o", "messages": messages, "max_tokens": 1 + (i * 37) % 400},
            }
        )
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _settle(procs: Processes, limit: int = 20) -> None:
    """Poll cycles until one settles the batch (the mock completes it on its 2nd retrieve)."""
    for _ in range(limit):
        if procs.poll()["settled"] == 1:
            return
    raise AssertionError(f"the batch was not settled after {limit} cycles: {procs.gateway_log()}")


def test_openai_sdk_batch_is_billed_exactly_once_to_key_user_and_team(procs: Processes) -> None:
    who = _tenant(procs, "oa")
    assert _counters(procs, who.raw_key) == dict.fromkeys(SCOPES, (0, 0))
    with procs.openai_client(who) as client:
        uploaded = client.files.create(file=("batch.jsonl", io.BytesIO(_openai_jsonl())), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        _assert_only_reserved(procs, who)

        _settle(procs)
        final = client.batches.retrieve(batch.id)
        assert final.status == "completed" and final.output_file_id, final
        assert final.request_counts is not None and final.request_counts.completed == OPENAI_LINES
        assert final.completed_at is not None
        output = client.files.content(final.output_file_id).read()
        bill, lines = price_output(output, datetime.fromtimestamp(final.completed_at, UTC))
        assert lines == OPENAI_LINES
        assert bill > 0
        event = f"batch:{batch.id}"
        _assert_billed(procs, who, bill, event)

        retrieve = partial(client.batches.with_raw_response.retrieve, batch.id)
        _assert_never_billed_again(procs, who, bill, event, retrieve, batch.id)

    # A restart (SIGTERM, same config, database and journal): the counters are rebuilt from
    # the ledger, and nothing is billed again.
    procs.restart_gateway()
    _assert_billed(procs, who, bill, event)
    for _ in range(3):
        assert procs.poll()["settled"] == 0
    with procs.openai_client(who) as client:
        raw = client.batches.with_raw_response.retrieve(batch.id)
        assert _usd_to_nanos(raw.headers["x-spendgate-response-cost"]) == bill
    _assert_billed(procs, who, bill, event)


def test_anthropic_sdk_message_batch_is_billed_exactly_once_to_key_user_and_team(procs: Processes) -> None:
    who = _tenant(procs, "an")
    assert _counters(procs, who.raw_key) == dict.fromkeys(SCOPES, (0, 0))
    requests: list[Any] = [
        {
            "custom_id": f"req-{i}",
            "params": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 1 + (i * 53) % 500,
                "messages": [{"role": "user", "content": f"question {i}: " + "why " * (i % 23 + 1)}],
            },
        }
        for i in range(ANTHROPIC_REQUESTS)
    ]
    with procs.anthropic_client(who) as client:
        batch = client.messages.batches.create(requests=requests)
        _assert_only_reserved(procs, who)

        _settle(procs)
        final = client.messages.batches.retrieve(batch.id)
        assert final.processing_status == "ended" and final.ended_at is not None
        assert final.request_counts.succeeded == ANTHROPIC_REQUESTS
        at = final.ended_at
        results = list(client.messages.batches.results(batch.id))
        assert len(results) == ANTHROPIC_REQUESTS
        messages = []
        for item in results:
            assert item.result.type == "succeeded", item
            messages.append(item.result.message.model_dump(mode="json"))
        bill = sum(to_nano(spendgate.completion_cost(m, batch=True, at=at)) for m in messages)
        assert bill > 0
        event = f"batch:{batch.id}"
        _assert_billed(procs, who, bill, event)

        retrieve = partial(client.messages.batches.with_raw_response.retrieve, batch.id)
        _assert_never_billed_again(procs, who, bill, event, retrieve, batch.id)

"""``/key/update`` with ``spend`` (issue #17 item 4): an administrator sets a key's spend the
way LiteLLM users reset a key, through the real gateway in front of the mock provider with
the official openai SDK as client.

On SQLite (one gateway, in-process counters) and on PostgreSQL + Redis (two gateways sharing
them): the reset is one ``adjustment`` event in the ledger (the audit record in it), the
key's ``/key/info`` spend is the value set at once, its budget admits again on the other
instance, the request counts and the team and global figures are unchanged, exports add up
to the ledger, a retry adds nothing, requests racing the reset are each billed once and
count on top of the value set; the reset moves the key's main (daily) window only, so its
monthly ``budget_limits`` cap keeps what was spent and refuses, also once the counters are
rebuilt from the ledger; non-admins get 403, bad values 422.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cluster_helpers import REDIS_URL, clear_redis, fetch, require_redis
from gateway_helpers import MASTER_KEY, GatewayServer, make_config

from spendgate.core.keys import hash_key as raw_hash
from spendgate.providers.mock import MockServer

CHAT: dict[str, Any] = {"model": "gpt-4o", "max_tokens": 5}


@dataclass
class Gateways:
    """One gateway (SQLite) or two sharing PostgreSQL and Redis; SQL reads of their ledger.

    ``cold`` builds one more gateway on the same ledger whose budget counters are all cold
    (its own in-process ones; with Redis, the shared ones flushed first), so they are
    rebuilt from the ledger.
    """

    servers: list[GatewayServer]
    sqlite_path: Path | None
    postgres_url: str | None
    cold: Callable[[], GatewayServer]

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """The rows of ``sql``, its parameters written ``?`` (``$n`` on PostgreSQL)."""
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(sql, args)]
        assert self.postgres_url is not None
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
        return [dict(r) for r in asyncio.run(fetch(self.postgres_url, numbered, *args))]

    def events(self, key_id: str) -> list[dict[str, Any]]:
        """The key's events, oldest first, ``occurred_at`` as an aware datetime."""
        rows = self.rows(
            "SELECT event_id, status, cost_nanos, occurred_at, api_key, user_id, team_id, model, adjustment "
            "FROM spend_events WHERE api_key = ? ORDER BY occurred_at, event_id",
            key_id,
        )
        for r in rows:
            at = r["occurred_at"]
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            r["occurred_at"] = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            if isinstance(r["adjustment"], str):
                r["adjustment"] = json.loads(r["adjustment"])
        return rows

    def global_totals(self) -> tuple[int, int, int]:
        """(requests, input tokens, cost) of the global rollups, every bucket."""
        (row,) = self.rows(
            "SELECT coalesce(sum(requests), 0) AS n, coalesce(sum(input_tokens), 0) AS t, "
            "coalesce(sum(cost_nanos), 0) AS c FROM spend_rollups WHERE grain = 900 AND scope_type = 'global'"
        )
        return int(row["n"]), int(row["t"]), int(row["c"])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def gateways(request: pytest.FixtureRequest, mock_server: MockServer, tmp_path: Path) -> Iterator[Gateways]:
    mock_server.reset()
    if request.param == "sqlite":
        db = tmp_path / "spendgate.db"

        def cold_sqlite() -> GatewayServer:
            return GatewayServer(make_config(mock_server.base_url, db, tmp_path / "journal-cold"))

        with GatewayServer(make_config(mock_server.base_url, db, tmp_path / "journal")) as server:
            yield Gateways([server], db, None, cold_sqlite)
        return
    require_redis()
    url = str(request.getfixturevalue("postgres_url"))
    prefix = f"keyspend{uuid.uuid4().hex[:8]}"

    def config(i: int) -> Any:
        general = {"database_url": url, "redis_url": REDIS_URL, "enforcement_key_prefix": prefix}
        return make_config(
            mock_server.base_url, tmp_path / "unused.db", tmp_path / f"journal-{i}", general_settings=general
        )

    def cold_redis() -> GatewayServer:
        clear_redis(f"{{{prefix}}}:")
        return GatewayServer(config(2))

    with GatewayServer(config(0)) as a, GatewayServer(config(1)) as b:
        yield Gateways([a, b], None, url, cold_redis)


def _admin(server: GatewayServer, key: str = MASTER_KEY) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30)


def _sdk(server: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=30)


def _chat(sdk: openai.OpenAI, text: str = "hello") -> str:
    """One call; its request id (the ledger's event id)."""
    raw = sdk.chat.completions.with_raw_response.create(messages=[{"role": "user", "content": text}], **CHAT)
    raw.parse()
    return str(raw.headers["x-spendgate-request-id"])


def _wait_events(gw: Gateways, key_id: str, ids: set[str], timeout: float = 20) -> list[dict[str, Any]]:
    """The key's events once every one of ``ids`` is in the ledger (the recorder writes behind)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = gw.events(key_id)
        if ids <= {r["event_id"] for r in rows} or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _key_info(server: GatewayServer, raw: str) -> dict[str, Any]:
    with _admin(server) as admin:
        info = admin.get("/key/info", params={"key": raw})
    assert info.status_code == 200, info.text
    return dict(info.json()["info"])


def _key_spend(server: GatewayServer, raw: str) -> int:
    """``/key/info`` spend, as nano-USD (the JSON number is computed from the nanos)."""
    return round(_key_info(server, raw)["spend"] * 1e9)


def _window_spend(server: GatewayServer, raw: str) -> list[int]:
    """``/key/info`` spend of each budget window (the main one first), as nano-USD."""
    return [round(w["spend"] * 1e9) for w in _key_info(server, raw)["budget_windows"]]


def _new_key(server: GatewayServer, **fields: Any) -> tuple[str, str]:
    with _admin(server) as admin:
        made = admin.post("/key/generate", json=fields)
    assert made.status_code == 200, made.text
    return made.json()["key"], made.json()["key_id"]


def _update(server: GatewayServer, body: dict[str, Any], key: str = MASTER_KEY) -> httpx.Response:
    with _admin(server, key) as admin:
        return admin.post("/key/update", json=body)


def _today() -> dict[str, str]:
    day = datetime.now(UTC).date().isoformat()
    return {"start_date": day, "end_date": day}


def test_admin_resets_a_key_and_its_budget_admits_again_on_every_instance(gateways: Gateways) -> None:
    a, b = gateways.servers[0], gateways.servers[-1]
    raw, key_id = _new_key(a, max_budget=1)
    with _sdk(a, raw) as sdk:
        ids = {_chat(sdk, f"call {i}") for i in range(3)}
    events = _wait_events(gateways, key_id, ids)
    spent = sum(e["cost_nanos"] for e in events)
    assert spent > 0 and _key_spend(a, raw) == spent
    requests, tokens, global_cost = gateways.global_totals()
    with _admin(a) as admin:
        team_report = admin.get("/global/spend/report", params=_today()).json()

    # The budget is exhausted: the key is refused on the other instance.
    assert _update(a, {"key": raw, "max_budget": spent / 1e9}).status_code == 200
    with _sdk(b, raw) as sdk, pytest.raises(openai.APIStatusError) as refused:
        _chat(sdk)
    assert "budget exceeded for key" in refused.value.message

    # Reset to 0, twice (a retry): one adjustment of -spent, the audit record in it.
    for _ in range(2):
        reset = _update(a, {"key": raw, "spend": 0})
        assert reset.status_code == 200, reset.text
    assert _key_spend(a, raw) == 0 and _key_spend(b, raw) == 0
    (adjustment,) = [e for e in gateways.events(key_id) if e["status"] == "adjustment"]
    assert adjustment["cost_nanos"] == -spent
    assert (adjustment["user_id"], adjustment["team_id"], adjustment["model"]) == (None, None, None)
    audit = adjustment["adjustment"]
    assert (audit["by"], audit["from_nanos"], audit["to_nanos"]) == ("master_key", spent, 0)
    assert audit["budget_duration"] is None

    # The budget admits again at once, on the other instance too; what it spends counts from 0.
    with _sdk(b, raw) as sdk:
        after = _chat(sdk, "after the reset")
    (new,) = [e for e in _wait_events(gateways, key_id, {after}) if e["event_id"] == after]
    assert _key_spend(a, raw) == new["cost_nanos"] == _key_spend(b, raw)

    # Not a request, and not the team's or the proxy's spend: only the new call was added.
    assert gateways.global_totals() == (
        requests + 1,
        tokens + _input_tokens(gateways, after),
        global_cost + new["cost_nanos"],
    )
    with _admin(a) as admin:
        report = admin.get("/global/spend/report", params=_today()).json()
        keys = admin.get("/global/spend/report", params={**_today(), "group_by": "api_key"}).json()
        logs = admin.get("/spend/logs", params={"request_id": adjustment["event_id"], "summarize": "false"})
    assert _total(report) == _total(team_report) + new["cost_nanos"]
    (ours,) = [
        k for k in keys if round(k["total_cost"] * 1e9) == new["cost_nanos"] and k["total_input_tokens"]
    ]
    assert ours["total_input_tokens"] == sum(m["total_input_tokens"] for m in ours["model_details"])
    assert logs.status_code == 200, logs.text
    (log,) = logs.json()
    assert round(log["spend"] * 1e9) == -spent and log["total_tokens"] == 0
    assert log["status"] == "adjustment" and log["api_key"] == raw_hash(raw)
    audit_out = log["metadata"]["adjustment"]
    assert (audit_out["by"], round(audit_out["from_spend"] * 1e9), audit_out["to_spend"]) == (
        "master_key",
        spent,
        0,
    )

    # Exports: the adjustment is a line of its own; CSV and FOCUS add up to the ledger.
    ledger_total = sum(e["cost_nanos"] for e in gateways.events(key_id))
    with _admin(a) as admin:
        csv_rows = _csv(admin.get("/global/spend/export", params={**_today(), "api_key": raw}).text)
        focus = _csv(
            admin.get("/global/spend/export", params={**_today(), "api_key": raw, "format": "focus"}).text
        )
    assert sum(int(r["cost_nanos"]) for r in csv_rows) == ledger_total
    assert [r["status"] for r in csv_rows if r["request_id"] == adjustment["event_id"]] == ["adjustment"]
    assert sum(int(r["x_BilledCostNanos"]) for r in focus) == ledger_total
    (credit,) = [r for r in focus if r["x_RequestId"] == adjustment["event_id"]]
    assert (credit["ChargeCategory"], int(credit["x_BilledCostNanos"])) == ("Adjustment", -spent)


def _input_tokens(gw: Gateways, event_id: str) -> int:
    (row,) = gw.rows("SELECT input_tokens FROM spend_events WHERE event_id = ?", event_id)
    return int(row["input_tokens"])


def _total(report: list[dict[str, Any]]) -> int:
    return sum(round(t["total_spend"] * 1e9) for day in report for t in day["teams"])


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_requests_racing_a_reset_are_billed_once_and_count_on_top_of_the_value_set(
    gateways: Gateways,
) -> None:
    server = gateways.servers[0]
    raw, key_id = _new_key(server, max_budget=5, budget_duration="1d")
    acknowledged: list[str] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        with _sdk(server, raw) as sdk:
            for i in range(n):
                request_id = _chat(sdk, f"race {i}")
                with lock:
                    acknowledged.append(request_id)

    with _sdk(server, raw) as sdk:
        acknowledged.append(_chat(sdk, "before"))
    threads = [threading.Thread(target=caller, args=(8,)) for _ in range(4)]
    for t in threads:
        t.start()
    while len(acknowledged) < 6:  # the reset lands in the middle of the calls
        time.sleep(0.01)
    reset = _update(server, {"key": raw, "spend": "0.001"})
    for t in threads:
        t.join()
    assert reset.status_code == 200, reset.text

    events = _wait_events(gateways, key_id, set(acknowledged))
    billed = [e["event_id"] for e in events if e["status"] != "adjustment"]
    assert sorted(billed) == sorted(acknowledged)  # every acknowledged call, each once
    (adjustment,) = [e for e in events if e["status"] == "adjustment"]
    before = [
        e for e in events if e["status"] != "adjustment" and e["occurred_at"] < adjustment["occurred_at"]
    ]
    after = [
        e for e in events if e["status"] != "adjustment" and e["occurred_at"] >= adjustment["occurred_at"]
    ]
    assert adjustment["adjustment"]["from_nanos"] == sum(e["cost_nanos"] for e in before)
    assert adjustment["adjustment"]["budget_duration"] == "1d"
    assert _key_spend(server, raw) == 1_000_000 + sum(e["cost_nanos"] for e in after)


@pytest.mark.parametrize("main", ["1d", "1mo"])
def test_a_reset_moves_the_main_budget_and_the_monthly_cap_keeps_what_was_spent(
    gateways: Gateways, main: str
) -> None:
    """A daily main budget, or a monthly one (then the cap is a second counter of the same
    duration, not one deduplicated with it)."""
    a, b = gateways.servers[0], gateways.servers[-1]
    raw, key_id = _new_key(a, max_budget=1, budget_duration=main)
    with _sdk(a, raw) as sdk:
        ids = {_chat(sdk, f"call {i}") for i in range(3)}
    spent = sum(e["cost_nanos"] for e in _wait_events(gateways, key_id, ids))
    assert spent > 0
    # The main budget: exactly what was spent; a monthly cap just above it, too little for
    # one more call (so a main budget of the same duration, stricter, does not hide it).
    limits = [{"budget_duration": "1mo", "max_budget": (spent + 1_000) / 1e9}]
    update = {"key": raw, "max_budget": spent / 1e9, "budget_limits": limits}
    assert _update(a, update).status_code == 200
    assert _window_spend(a, raw) == [spent, spent]

    reset = _update(a, {"key": raw, "spend": 0})
    assert reset.status_code == 200, reset.text
    (adjustment,) = [e for e in gateways.events(key_id) if e["status"] == "adjustment"]
    assert adjustment["cost_nanos"] == -spent and adjustment["adjustment"]["budget_duration"] == main
    for server in (a, b):
        assert _key_spend(server, raw) == 0
        assert _window_spend(server, raw) == [0, spent]
    # The main budget has room again; the monthly cap has none: refused, on either instance.
    with _sdk(b, raw) as sdk, pytest.raises(openai.APIStatusError) as refused:
        _chat(sdk, "after the reset")
    assert f"budget exceeded for key:{key_id}, window 1mo" in refused.value.message

    # Rebuilt from the ledger (a restart; with Redis, the counters flushed): the same.
    with gateways.cold() as cold:
        assert _window_spend(cold, raw) == [0, spent]
        with _sdk(cold, raw) as sdk, pytest.raises(openai.APIStatusError) as again:
            _chat(sdk, "after the rebuild")
        assert "window 1mo" in again.value.message
    # A higher cap: the reset main budget admits, and both windows count the call.
    raised = [{"budget_duration": "1mo", "max_budget": 1}]
    assert _update(a, {"key": raw, "budget_limits": raised}).status_code == 200
    with _sdk(a, raw) as sdk:  # the other instance caches the key's limits (key_cache_ttl_seconds)
        after = _chat(sdk, "with room")
    (new,) = [e for e in _wait_events(gateways, key_id, {after}) if e["event_id"] == after]
    assert _window_spend(a, raw) == [new["cost_nanos"], spent + new["cost_nanos"]]


def test_only_a_proxy_admin_sets_spend_and_only_to_an_amount(mock: MockServer, tmp_path: Path) -> None:
    db = tmp_path / "spendgate.db"
    with GatewayServer(make_config(mock.base_url, db, tmp_path / "journal")) as server:
        with _admin(server) as admin:
            own = admin.post("/user/new", json={"user_id": "owner", "user_role": "internal_user"}).json()[
                "key"
            ]
            lead_key = admin.post("/user/new", json={"user_id": "lead", "user_role": "internal_user"}).json()[
                "key"
            ]
            assert admin.post("/team/new", json={"team_id": "t1"}).status_code == 200
            for member in ({"role": "admin", "user_id": "lead"}, {"role": "user", "user_id": "owner"}):
                added = admin.post("/team/member_add", json={"team_id": "t1", "member": member})
                assert added.status_code == 200, added.text
        team_key, _ = _new_key(server, team_id="t1", user_id="owner")
        # The key's owner and the team's admin may change the key, not its spend.
        for caller, target in ((own, own), (lead_key, team_key)):
            refused = _update(server, {"key": target, "spend": 0}, key=caller)
            assert refused.status_code == 403, refused.text
            assert "spend" in refused.json()["error"]["message"]
        for bad in (-1, "abc", None, True, [0], "1e3"):
            answer = _update(server, {"key": own, "spend": bad})
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.json()["error"]["param"] == "spend"
        with sqlite3.connect(db) as conn:
            assert conn.execute(
                "SELECT count(*) FROM spend_events WHERE status = 'adjustment'"
            ).fetchone() == (0,)
        # An amount given as text is exact; the spend of a key that never spent is set from 0.
        assert _update(server, {"key": own, "spend": "2.5"}).status_code == 200
        assert _key_spend(server, own) == 2_500_000_000

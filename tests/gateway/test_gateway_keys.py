"""Virtual keys: looked up by hash, attributed on every event, limited to their models,
refused when blocked or expired. Also the end customer and tags of a request."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from gateway_helpers import GatewayServer, Ledger

from spendgate.core.keys import hash_key


def _add_key(db: Path, raw: str, **fields: object) -> None:
    now = datetime.now(UTC).isoformat()
    stamps = {"created_at": now, "updated_at": now}
    digest = hash_key(raw)
    columns = {"token": digest, "key_id": digest, "key_prefix": raw[:8], "blocked": 0, **stamps, **fields}
    for name in ("models", "tags", "metadata"):
        if name in columns:
            columns[name] = json.dumps(columns[name])
    with sqlite3.connect(db) as conn:
        # (timestamps given: the schema's server default, now(), is not a SQLite function)
        for table, column, value in (("users", "user_id", "alice"), ("teams", "team_id", "search")):
            conn.execute(
                f"INSERT OR IGNORE INTO {table} ({column}, created_at, updated_at) VALUES (?, ?, ?)",  # noqa: S608
                (value, now, now),
            )
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        conn.execute(f"INSERT INTO virtual_keys ({names}) VALUES ({marks})", tuple(columns.values()))  # noqa: S608


@pytest.fixture(scope="module")
def keys(gateway: GatewayServer, ledger: Ledger) -> Iterator[dict[str, str]]:
    keys = {
        "team": "sk-team-key-0001",
        "limited": "sk-limited-0002",
        "blocked": "sk-blocked-0003",
        "expired": "sk-expired-0004",
    }
    db = ledger.db_path
    _add_key(db, keys["team"], user_id="alice", team_id="search", tags=["batch-jobs"])
    _add_key(db, keys["limited"], models=["text-embedding-3-small"])
    _add_key(db, keys["blocked"], blocked=1)
    _add_key(db, keys["expired"], expires=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    yield keys


def test_virtual_key_attribution(
    gateway: GatewayServer, keys: dict[str, str], ledger: Ledger, mock: object
) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key=keys["team"], max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=2,
            user="customer-42",
            metadata={"tags": ["checkout"]},  # type: ignore[dict-item]
        )
    row = ledger.operation(raw.headers["x-spendgate-request-id"], 1)[0]
    assert row["api_key"] == hash_key(keys["team"])
    assert (row["user_id"], row["team_id"], row["end_user"]) == ("alice", "search", "customer-42")
    assert json.loads(str(row["request_tags"])) == ["batch-jobs", "checkout"]


def test_x_api_key_header_works(
    gateway: GatewayServer, keys: dict[str, str], ledger: Ledger, mock: object
) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key=keys["team"], max_retries=0) as c:
        raw = c.messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
        )
    assert ledger.operation(raw.headers["x-spendgate-request-id"], 1)[0]["team_id"] == "search"


def test_key_limited_to_models(gateway: GatewayServer, keys: dict[str, str], mock: object) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key=keys["limited"], max_retries=0) as c:
        assert [m.id for m in c.models.list()] == ["text-embedding-3-small"]
        c.embeddings.create(model="text-embedding-3-small", input="ok")
        with pytest.raises(openai.PermissionDeniedError):
            c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_blocked_and_expired_keys(gateway: GatewayServer, keys: dict[str, str]) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.url) as http:
        blocked = http.post(
            "/chat/completions", json=body, headers={"authorization": f"Bearer {keys['blocked']}"}
        )
        expired = http.post("/chat/completions", json=body, headers={"x-api-key": keys["expired"]})
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "key_blocked"
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "key_expired"

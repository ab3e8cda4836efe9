"""The SDK's calls in spendgate's ledger (issue #14 item 6): ``spendgate.configure(database_url=...)``
records every metered call (instrumented clients and completion()) through the ledger's
Recorder, with the exact cost, the outcome and the attribution its metadata gives, so spend
reports see SDK traffic. SQLite and PostgreSQL (``SPENDGATE_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.engine import make_url

import spendgate
from db_helpers import clear_database, database_name
from spendgate.errors import ConfigurationError, StorageError
from spendgate.ledger.reports import spend_report
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.sdk import callbacks, ledger, results
from spendgate.sdk.budget import BUDGET
from spendgate.sdk.completion_clients import reset_clients
from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.migrate import alembic_config
from spendgate.stores.database.models import SpendEventRow

MESSAGES: list[Any] = [{"role": "user", "content": "Hey, how's it going?"}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def recorded(database_url: str, tmp_path: Path) -> Iterator[str]:
    async def clear() -> None:
        engine = create_engine(database_url)
        try:
            await clear_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(clear())
    BUDGET.reset()
    callbacks.reset()
    results.reset()
    spendgate.configure(database_url=database_url, journal_dir=tmp_path / "journal", flush_interval=0.02)
    yield database_url
    spendgate.configure(None)
    callbacks.reset()
    results.reset()
    reset_clients()


async def _rows(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(SpendEventRow.__table__))
            return {row.event_id: row for row in result}
    finally:
        await engine.dispose()


def test_every_metered_call_is_a_spend_event_with_its_exact_cost(recorded: str, mock: MockServer) -> None:
    ended: list[dict[str, Any]] = []
    spendgate.callbacks = [lambda kwargs, *_: ended.append(kwargs)]
    metadata = {"user": "alice", "team_id": "team-a", "tags": ["nightly", "eval"]}

    mocked = spendgate.completion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        mock_response="Fine, thanks!",
        metadata=metadata,
        user="cust-1",
    )
    with spendgate.openai.OpenAI(
        base_url=mock.url, api_key="sk", max_retries=0, spendgate_metadata={"user_id": "bob"}
    ) as client:
        direct = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
        streamed = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=3, stream=True
        )
        for _ in streamed:
            pass
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=-1)
    claude = asyncio.run(
        spendgate.acompletion(
            model="anthropic/claude-sonnet-4-6",
            messages=MESSAGES,
            api_base=mock.base_url,
            api_key="sk",
            max_tokens=4,
            metadata={"user": "alice", "tags": ["eval"]},
        )
    )
    spendgate.flush()

    rows = asyncio.run(_rows(recorded))
    assert len(ended) == 5 and set(rows) == {k["litellm_call_id"] for k in ended}  # event_id = the call's id
    by_id = {k["litellm_call_id"]: k for k in ended}
    costs = [spendgate.breakdown_of(r).total_nanos for r in (mocked, direct, streamed, claude)]
    assert all(c > 0 for c in costs)
    success = [
        rows[k["litellm_call_id"]] for k in ended if k["standard_logging_object"]["status"] == "success"
    ]
    assert sorted(r.cost_nanos for r in success) == sorted(costs)  # exact, to the nano-USD
    for call_id, row in rows.items():
        kwargs = by_id[call_id]
        breakdown = kwargs["cost_breakdown"]
        assert row.cost_nanos == (breakdown.total_nanos if breakdown is not None else 0)
        assert row.model == kwargs["model"] and row.provider == kwargs["custom_llm_provider"]

    first = rows[ended[0]["litellm_call_id"]]
    assert (first.status, first.user_id, first.team_id, first.end_user) == (
        "success",
        "alice",
        "team-a",
        "cust-1",
    )
    assert list(first.request_tags) == ["nightly", "eval"]
    assert first.cost_nanos == spendgate.breakdown_of(mocked).total_nanos
    failed = [r for r in rows.values() if r.status == "error"]
    assert len(failed) == 1 and failed[0].cost_nanos == 0 and failed[0].user_id == "bob"
    last = rows[ended[-1]["litellm_call_id"]]
    assert (last.provider, last.model, last.endpoint) == ("anthropic", "claude-sonnet-4-6", "/v1/messages")
    assert last.cost_nanos == spendgate.breakdown_of(claude).total_nanos

    async def report() -> dict[str | None, int]:
        engine = create_engine(recorded)
        try:
            now = datetime.now(UTC)
            found = await spend_report(
                engine, start=now - timedelta(days=1), end=now + timedelta(days=1), group_by=["user"]
            )
        finally:
            await engine.dispose()
        return {row.values[0]: row.totals.cost_nanos for row in found.rows}

    by_user = asyncio.run(report())  # what `spendgate spend report --by user` reads
    assert by_user["alice"] == costs[0] + costs[3]
    assert by_user["bob"] == costs[1] + costs[2]


def test_recording_is_off_by_default_and_turns_off(recorded: str) -> None:
    assert ledger.is_configured()
    spendgate.configure(None)
    assert not ledger.is_configured()
    spendgate.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="not recorded")
    spendgate.flush()  # nothing configured: nothing to wait for
    assert asyncio.run(_rows(recorded)) == {}


def test_the_process_exit_flushes(recorded: str, tmp_path: Path) -> None:
    spendgate.configure(None)
    script = f"""
import spendgate
spendgate.configure(database_url={recorded!r}, journal_dir={str(tmp_path / "exit-journal")!r},
                    flush_interval=3600)  # only the exit flush can write it
r = spendgate.completion(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                         mock_response="bye", metadata={{"user": "exit"}})
print(spendgate.breakdown_of(r).total_nanos)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (row,) = asyncio.run(_rows(recorded)).values()
    assert (row.user_id, row.cost_nanos) == ("exit", int(done.stdout))


# -- a database that is not migrated (issue #14 doc review, item 5) ---------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"
        return
    base = os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    dsn = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    name = database_name("sdk_unmigrated")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        spendgate.configure(None)
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_configure_refuses_a_database_that_was_never_migrated(unmigrated_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        spendgate.configure(database_url=unmigrated_url, journal_dir=tmp_path / "journal")
    assert "never migrated" in str(refused.value)
    assert "run `spendgate db upgrade --database-url " in str(refused.value)
    assert not ledger.is_configured()
    assert not (tmp_path / "journal").exists()  # nothing was journaled for tables that are not there


def test_configure_refuses_a_database_at_another_revision(unmigrated_url: str, tmp_path: Path) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(head).down_revision
    assert isinstance(previous, str)

    async def migrate() -> None:
        engine = create_engine(unmigrated_url)
        try:
            await upgrade(engine, previous)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    with pytest.raises(ConfigurationError) as refused:
        spendgate.configure(database_url=unmigrated_url, journal_dir=tmp_path / "journal")
    assert f"at schema revision {previous}, and this spendgate writes revision {head}" in str(refused.value)
    assert "spendgate db upgrade --database-url" in str(refused.value)
    assert not ledger.is_configured()


def test_configure_says_when_the_database_does_not_answer(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        spendgate.configure(
            database_url="postgresql+asyncpg://postgres@127.0.0.1:9/spendgate", journal_dir=tmp_path / "j"
        )
    assert not ledger.is_configured()

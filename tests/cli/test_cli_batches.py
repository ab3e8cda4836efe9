"""``spendgate batches list|show|poll``: list and show read a SQLite database holding batch
rows in every state (settled, unsettled, stale, with unpriced lines) and their ledger events;
poll runs one cycle on a real gateway app, reached in-process over ASGI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from batch_test_helpers import add_unknown_batch, batch_gateway_config
from spendgate.cli import _GROUPS, _admin_client, _output, _register, app
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.server import Services, build_app
from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.models import ManagedObject

runner = CliRunner()
_register()

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTLED = "batch_sg" + "1" * 32
UNSETTLED = "batch_sg" + "2" * 32
STALE = "batch_sg" + "3" * 32
UNPRICED = "msgbatch_sg" + "4" * 32
FILE = "file-sg" + "5" * 32


def _batch(object_id: str, minutes: int, **values: Any) -> ManagedObject:
    row: dict[str, Any] = {
        "id": object_id,
        "kind": "batch",
        "api": "openai",
        "deployment_id": "dep-1",
        "provider_id": f"prov-{object_id[-4:]}",
        "model_group": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "status": "in_progress",
        "input_file_id": "file-in",
        "requests_total": 10,
        "requests_completed": 0,
        "requests_failed": 0,
        "api_key": "key-a",
        "user_id": "user-a",
        "team_id": "team-a",
        "reserved_nanos": 3_000_000_000,
        "created_at": T0 + timedelta(minutes=minutes),
    }
    row.update(values)
    return ManagedObject(**row)


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite database with four batches, a file, and the ledger events of two."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'batches.db'}"

    async def main() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with AsyncSession(engine) as session:
                session.add_all(
                    [
                        _batch(
                            SETTLED,
                            0,
                            status="completed",
                            requests_completed=9,
                            requests_failed=1,
                            cost_nanos=1_250_000_001,
                            usage={"input_tokens": 900, "output_tokens": 90},
                            settled_at=T0 + timedelta(hours=2),
                            claimed_by="gw-1",
                            claimed_at=T0 + timedelta(hours=2),
                            output_file_id="file-out",
                            error_file_id="file-err",
                            organization_id="org-a",
                            end_user="customer-7",
                            tags=["nightly", "eval"],
                        ),
                        _batch(UNSETTLED, 10, user_id=None, team_id=None),
                        _batch(STALE, 20, status="validating", stale=True, settled_at=T0 + timedelta(days=3)),
                        _batch(
                            UNPRICED,
                            30,
                            api="anthropic",
                            status="ended",
                            api_key="key-b",
                            team_id="team-b",
                            requests_completed=10,
                            cost_nanos=0,
                            unpriced=True,
                            settled_at=T0 + timedelta(hours=1),
                        ),
                        ManagedObject(
                            id=FILE, kind="file", api="openai", status="processed", purpose="batch"
                        ),
                    ]
                )
                await session.commit()
            billed = T0 + timedelta(hours=1, minutes=59)

            def settled_event(suffix: str, cost: int, usage: Usage, **values: Any) -> SpendEvent:
                """One of SETTLED's events (key-a's)."""
                return SpendEvent(
                    event_id=f"batch:{SETTLED}{suffix}",
                    occurred_at=billed,
                    cost_nanos=cost,
                    usage=usage,
                    batch_id=SETTLED,
                    api_key="key-a",
                    **values,
                )

            await LedgerRepository(engine).write_batch(
                [
                    settled_event("", 1_250_000_001, Usage(input_tokens=800, output_tokens=80)),
                    settled_event(":unpriced", 0, Usage(input_tokens=100, output_tokens=10), unpriced=True),
                    # Another batch's event, and a live call's: neither bills SETTLED.
                    SpendEvent(event_id=f"batch:{UNPRICED}:unpriced", occurred_at=billed, cost_nanos=0),
                    SpendEvent(event_id="chatcmpl-1", occurred_at=billed, cost_nanos=7, batch_id=None),
                ]
            )
        finally:
            await engine.dispose()

    asyncio.run(main())
    return url


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as a wide terminal shows them (no cell cut to fit 80 columns)."""
    monkeypatch.setattr(_output.console, "_width", 300)


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["batches", *args])


def as_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_group_is_registered() -> None:
    assert ("spendgate.cli.batches", "batches") in _GROUPS


def test_list_json_is_newest_first_with_exact_money(database: str) -> None:
    data = as_json("list", "--database-url", database)
    batches = {b["id"]: b for b in data["batches"]}
    assert [b["id"] for b in data["batches"]] == [UNPRICED, STALE, UNSETTLED, SETTLED]  # no file
    settled = batches[SETTLED]
    assert settled["cost_nanos"] == 1_250_000_001 and settled["cost_usd"] == "1.250000001"
    assert settled["reserved_nanos"] == 3_000_000_000 and settled["reserved_usd"] == "3"
    assert settled["requests"] == {"total": 10, "completed": 9, "failed": 1}
    assert settled["settled"] is True and settled["stale"] is False
    assert (settled["api_key"], settled["user_id"], settled["team_id"]) == ("key-a", "user-a", "team-a")
    assert batches[UNSETTLED]["settled"] is False and batches[UNSETTLED]["cost_nanos"] is None
    assert batches[UNSETTLED]["cost_usd"] is None
    assert batches[STALE]["stale"] is True and batches[STALE]["settled"] is False
    assert batches[STALE]["cost_nanos"] is None
    assert batches[UNPRICED]["unpriced"] is True and batches[UNPRICED]["api"] == "anthropic"


def test_list_table_marks_every_state(database: str, wide_console: None) -> None:
    result = invoke("list", "--database-url", database)
    assert result.exit_code == 0, result.output
    lines = {
        row_id: next(line for line in result.output.splitlines() if row_id in line)
        for row_id in (SETTLED, UNSETTLED, STALE, UNPRICED)
    }
    assert "$1.250000001" in lines[SETTLED] and "10 / 9 / 1" in lines[SETTLED]
    assert "$3.00" in lines[SETTLED] and "key-a / user-a / team-a" in lines[SETTLED]
    assert "2026-03-02 09:00" in lines[SETTLED]
    assert "unsettled" in lines[UNSETTLED] and "key-a / — / —" in lines[UNSETTLED]
    assert "stale" in lines[STALE] and "$" not in lines[STALE].split("$3.00")[1]
    assert "$0.00 + unpriced" in lines[UNPRICED] and "anthropic" in lines[UNPRICED]
    assert FILE not in result.output
    order = [result.output.index(i) for i in (UNPRICED, STALE, UNSETTLED, SETTLED)]
    assert order == sorted(order)


def test_list_filters_and_limit(database: str) -> None:
    def ids(*args: str) -> list[str]:
        return [b["id"] for b in as_json("list", "--database-url", database, *args)["batches"]]

    assert ids("--unsettled") == [UNSETTLED]
    assert ids("--status", "completed") == [SETTLED]
    assert ids("--status", "in_progress", "--unsettled") == [UNSETTLED]
    assert ids("--status", "failed") == []
    assert ids("--limit", "2") == [UNPRICED, STALE]
    assert invoke("list", "--database-url", database, "--limit", "0").exit_code != 0


def test_show_json_has_everything_and_the_ledger_events(database: str) -> None:
    data = as_json("show", SETTLED, "--database-url", database)
    assert data["id"] == SETTLED and data["status"] == "completed"
    assert data["end_user"] == "customer-7" and data["tags"] == ["nightly", "eval"]
    assert data["organization_id"] == "org-a"
    assert (data["deployment_id"], data["provider_id"]) == ("dep-1", f"prov-{SETTLED[-4:]}")
    assert (data["input_file_id"], data["output_file_id"], data["error_file_id"]) == (
        "file-in",
        "file-out",
        "file-err",
    )
    assert data["usage"] == {"input_tokens": 900, "output_tokens": 90}
    assert data["settled_at"] == (T0 + timedelta(hours=2)).isoformat()
    assert data["claimed_by"] == "gw-1"
    assert [
        (e["event_id"], e["cost_nanos"], e["cost_usd"], e["unpriced"]) for e in data["ledger_events"]
    ] == [
        (f"batch:{SETTLED}", 1_250_000_001, "1.250000001", False),
        (f"batch:{SETTLED}:unpriced", 0, "0", True),
    ]
    # Not settled yet: no events, no cost.
    unsettled = as_json("show", UNSETTLED, "--database-url", database)
    assert unsettled["ledger_events"] == [] and unsettled["cost_nanos"] is None


def test_show_table(database: str, wide_console: None) -> None:
    result = invoke("show", SETTLED, "--database-url", database)
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("customer-7", "nightly, eval", "org-a", "file-out", "file-err", "gw-1", "dep-1"):
        assert text in out
    assert "$1.250000001" in out
    event_line = next(line for line in out.splitlines() if f"batch:{SETTLED} " in line)
    assert "$1.250000001" in event_line
    unpriced_line = next(line for line in out.splitlines() if f"batch:{SETTLED}:unpriced" in line)
    assert "unpriced" in unpriced_line.replace(f"batch:{SETTLED}:unpriced", "")
    stale = invoke("show", STALE, "--database-url", database)
    assert stale.exit_code == 0 and "stale" in stale.output and "ledger: no events" in stale.output


def test_show_of_an_unknown_id_fails(database: str) -> None:
    for unknown in ("batch_sgnope", FILE):  # a file is not a batch
        result = invoke("show", unknown, "--database-url", database)
        assert result.exit_code == 1
        assert "no batch" in result.output and unknown in result.output


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    result = invoke("list", "--database-url", f"sqlite+aiosqlite:///{path}")
    assert result.exit_code == 2 and "no database" in result.output
    assert not path.exists()


def test_an_unmigrated_database_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    result = invoke("list", "--database-url", f"sqlite+aiosqlite:///{path}")
    message = " ".join(result.output.split())  # as the terminal wrapped it
    assert result.exit_code == 2 and "no such table: managed_objects" in message
    assert "run `spendgate db upgrade`" in message


# -- poll, against a real gateway ----------------------------------------------------------


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


class _AppOnLoop(httpx.AsyncBaseTransport):
    """The CLI runs its own event loop (in a worker thread here); the gateway app lives on
    the test's loop. Each request is handed to the app on its loop and read there whole."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = loop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def on_app_loop() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self._inner.handle_async_request(request)
            return response.status_code, response.headers.raw, await response.aread()

        future = asyncio.run_coroutine_threadsafe(on_app_loop(), self._loop)
        status, headers, body = await asyncio.wrap_future(future)
        return httpx.Response(status, headers=headers, content=body)


async def test_poll_runs_one_cycle_with_the_master_key_only(
    tmp_path: Path, mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only the command runs cycles here
    config = batch_gateway_config(tmp_path, mock.url, "sk-master-cli", batch_poll_interval_seconds=3600)
    database = str(config.general_settings.database_url)
    monkeypatch.delenv("SPENDGATE_MASTER_KEY", raising=False)
    gateway = build_app(config)

    async def cli(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, app, ["batches", *args])

    async with gateway.starlette.router.lifespan_context(gateway.starlette):
        services: Services = gateway.state.services
        await services.jobs.close()  # only the command's cycles may touch the row from here
        batch_id = await add_unknown_batch(services)  # unknown to its provider: retired
        monkeypatch.setattr(_admin_client, "transport", _AppOnLoop(gateway, asyncio.get_running_loop()))

        wrong = await cli("poll", "--url", "http://gw", "--master-key", "sk-wrong")
        anonymous = await cli("poll", "--url", "http://gw")
        before = await cli("show", batch_id, "--json", "--database-url", database)
        ran = await cli("poll", "--url", "http://gw", "--master-key", "sk-master-cli")
        again = await cli("poll", "--url", "http://gw", "--master-key", "sk-master-cli", "--json")
        after = await cli("show", batch_id, "--json", "--database-url", database)

    assert wrong.exit_code != 0 and "403" in wrong.output
    assert anonymous.exit_code != 0 and "no key" in anonymous.output
    assert json.loads(before.stdout)["stale"] is False  # the refused calls ran no cycle
    assert ran.exit_code == 0, ran.output
    assert "seen 1, settled 0, stale 1, errors 0" in ran.output
    assert again.exit_code == 0 and json.loads(again.stdout) == {
        "seen": 0,
        "settled": 0,
        "stale": 0,
        "errors": 0,
    }
    assert json.loads(after.stdout)["stale"] is True


def test_poll_with_the_gateway_down_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_admin_client, "transport", None)
    result = invoke("poll", "--url", "http://127.0.0.1:9", "--master-key", "sk-any")
    assert result.exit_code != 0 and "cannot reach the gateway" in result.output

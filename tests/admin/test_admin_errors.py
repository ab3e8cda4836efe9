"""How the management API's edge answers what handlers raise: the configured
budget-exceeded status, the entity service's refusals as 404 / 409 / 422, and a pool with
no free connection as a 503 that says so (not that the database is unavailable)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from admin_helpers import MASTER, admin_client
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm.exc import StaleDataError
from starlette.applications import Starlette
from starlette.routing import Route

from spendgate.admin import AdminSettings
from spendgate.admin._http import Context, Endpoint, make_handler
from spendgate.entities import EntityConflict, EntityInvalid, EntityNotFound
from spendgate.errors import BudgetExceeded
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import Budget, Team

pytestmark = pytest.mark.asyncio


async def _status(engine: AsyncEngine, exc: Exception, **settings: Any) -> tuple[int, dict[str, Any]]:
    async def handler(ctx: Context, body: Any) -> Any:
        raise exc

    endpoint = Endpoint(path="/boom", methods=("GET",), handler=handler, summary="", tag="t", write=False)
    app = Starlette(
        routes=[
            Route("/boom", make_handler(endpoint, AdminSettings.from_master_key(engine, MASTER, **settings)))
        ]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        response = await client.get("/boom", headers={"authorization": f"Bearer {MASTER}"})
    return response.status_code, response.json()["error"]


def _budget() -> BudgetExceeded:
    return BudgetExceeded(
        scope="key:k",
        window="1d",
        spend_nanos=1,
        reserved_nanos=0,
        limit_nanos=1,
        requested_nanos=1,
        reset_at=None,
        retry_after=None,
    )


async def test_budget_exceeded_status_is_configured(engine: AsyncEngine) -> None:
    assert (await _status(engine, _budget()))[0] == 429
    status, error = await _status(engine, _budget(), budget_exceeded_status=402)
    assert status == 402 and error["type"] == "budget_exceeded"


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (EntityNotFound("team 't' not found", param="team_id"), 404, "not_found"),
        (EntityConflict("team 't' already exists", param="team_id"), 409, "conflict"),
        (EntityInvalid("metadata.x is reserved", param="metadata.x"), 422, "invalid_value"),
    ],
)
async def test_entity_refusals(engine: AsyncEngine, exc: Exception, status: int, code: str) -> None:
    got, error = await _status(engine, exc)
    assert got == status
    assert (error["message"], error["param"], error["code"]) == (
        str(exc),
        "team_id" if status != 422 else "metadata.x",
        code,
    )


async def test_a_write_that_lost_a_race_is_a_conflict(engine: AsyncEngine) -> None:
    """The row a write read was deleted or re-keyed before it was written (SQLAlchemy's
    ``StaleDataError``): 409, not a 500 (tests/admin/test_admin_races.py makes the race)."""
    stale = StaleDataError("UPDATE statement on table 'teams' expected to update 1 row(s); 0 were matched.")
    status, error = await _status(engine, stale)
    assert (status, error["code"]) == (409, "conflict")
    assert "another request" in error["message"] and "teams" not in error["message"]


async def test_an_answer_that_cannot_be_written_changes_nothing(engine: AsyncEngine) -> None:
    """A handler's change and its answer are one: an answer that cannot be serialised is a
    500 in the error shape, and the change is rolled back (never a failure reported for a
    change that was made)."""

    async def handler(ctx: Context, body: Any) -> Any:
        await ctx.repo.add(Budget(budget_id="written-then-failed"))
        return {"unserialisable": object()}

    endpoint = Endpoint(path="/half", methods=("POST",), handler=handler, summary="", tag="t", write=True)
    settings = AdminSettings.from_master_key(engine, MASTER)
    app = Starlette(routes=[Route("/half", make_handler(endpoint, settings), methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        response = await client.post("/half", headers={"authorization": f"Bearer {MASTER}"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "internal_error"
    async with engine.connect() as conn:
        left = await conn.scalar(
            select(func.count()).select_from(Budget).where(Budget.budget_id == "written-then-failed")
        )
    assert left == 0


@pytest.mark.postgres
async def test_a_pool_with_no_free_connection_is_busy_not_unavailable(postgres_url: str) -> None:
    """PostgreSQL with one pooled connection, held elsewhere: a read and a write each wait
    the pool's timeout and get 503 ``database_busy`` with a Retry-After, the write changes
    nothing; once the connection is free both succeed."""
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    try:
        async with admin_client(engine) as client:
            auth = {"authorization": f"Bearer {MASTER}"}
            async with engine.connect() as held:
                await held.execute(select(1))
                read = await client.get("/team/list", headers=auth)
                write = await client.post("/team/new", json={"team_id": "busy-team"}, headers=auth)
            for response in (read, write):
                assert response.status_code == 503
                error = response.json()["error"]
                assert (error["type"], error["code"]) == ("service_unavailable", "database_busy")
                assert "no database connection came free" in error["message"]
                assert "nothing was changed" in error["message"]
                assert response.headers["retry-after"] == "1"
            assert (await client.get("/team/list", headers=auth)).status_code == 200
            async with engine.connect() as conn:
                count = select(func.count()).select_from(Team).where(Team.team_id == "busy-team")
                assert await conn.scalar(count) == 0
            created = await client.post("/team/new", json={"team_id": "busy-team"}, headers=auth)
            assert created.status_code == 200
    finally:
        await engine.dispose()

"""schemathesis over the management API, in process, on SQLite and PostgreSQL at once.

Every operation of ``/openapi.json`` gets generated valid requests and generated invalid
ones (schemathesis' positive and negative modes), each sent with the master key to the
admin app on SQLite and to the admin app on PostgreSQL. Each answer must be no server
error, have a status and content type the document declares for the operation, match the
declared response schema, and reject what the schema calls invalid; and both databases
must answer the same request with the same status. So a limit, a format or an either-or
rule the document states but the server does not hold fails here, and so does a value (a
NUL, a huge number, a long id) that one database stores and the other refuses.

Objects named ``"0"`` (the string hypothesis tries first) exist before the run, so
generated requests reach past the 404 of an unknown id. ``SPENDGATE_SCHEMATHESIS_EXAMPLES``
sets the examples per operation and mode: 10 here (drawing a case from these schemas costs
more than serving it; about 25 s in all on a quiet machine), 250 in
``reliability/schemathesis_admin.sh`` (500 per operation).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette

from db_helpers import clear_database
from spendgate.admin import build_admin_app
from spendgate.stores.database import create_engine

pytestmark = pytest.mark.postgres

EXAMPLES = int(os.environ.get("SPENDGATE_SCHEMATHESIS_EXAMPLES", "10"))
MASTER = "sk-master-schemathesis"
AUTH = {"Authorization": f"Bearer {MASTER}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
SEED = [
    ("/organization/new", {"organization_id": "0", "organization_alias": "0"}),
    ("/budget/new", {"budget_id": "0", "max_budget": 1}),
    ("/team/new", {"team_id": "0", "organization_id": "0"}),
    ("/user/new", {"user_id": "0", "teams": ["0"], "key_alias": "0"}),
    ("/customer/new", {"user_id": "0", "max_budget": 1}),
]


@dataclass
class Report:
    """What a run did: cases per mode, answers per mode and status, every failure."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def fail(self, failure: str) -> None:
        if failure not in self.failures:
            print(f"FAILURE {failure}", flush=True)  # seen at once with -s (the long runs)
        self.failures.append(failure)

    def summary(self) -> str:
        statuses = ", ".join(f"{key}: {n}" for key, n in sorted(self.statuses.items()))
        return (
            f"schemathesis admin API on SQLite and PostgreSQL: {EXAMPLES} examples per operation "
            f"and mode; {self.cases['positive']} positive and {self.cases['negative']} negative "
            f"cases, each sent to both ({self.cases['no invalid request possible']} operations "
            f"with nothing to make invalid); statuses {{{statuses}}}; "
            f"{len(set(self.failures))} distinct failures"
        )


def run_operations(schema: BaseSchema, apps: dict[str, Starlette], report: Report) -> None:
    """Every operation, valid then invalid data; failures are collected, not shrunk."""
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document is the server's own: every operation loads
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(result.ok(), mode, apps, report)


def _run(operation: APIOperation, mode: GenerationMode, apps: dict[str, Starlette], report: Report) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=AUTH))
    def one(case: Case) -> None:
        report.cases[mode.value] += 1
        statuses = {}
        for backend, app in apps.items():
            response = case.call(headers=AUTH, app=app)
            statuses[backend] = response.status_code
            report.statuses[f"{mode.value[:3]} {response.status_code}"] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=AUTH)
            except FailureGroup as exc:
                report.fail(f"{operation.label} [{mode.value}, {backend}]: {exc}")
        if len(set(statuses.values())) > 1:
            report.fail(f"{operation.label}: {statuses} for {case.as_curl_command()}")

    try:
        one()
    except Unsatisfiable:
        # Nothing of the operation can be made invalid (no parameters, an optional body).
        assert mode is GenerationMode.NEGATIVE, operation.label
        report.cases["no invalid request possible"] += 1


def _unpooled(database_url: str) -> AsyncEngine:
    """No pool: schemathesis serves ASGI requests in an event loop of its own, so each
    request connects there and closes after."""
    if database_url.startswith("sqlite"):
        return create_engine(database_url, poolclass=NullPool)  # with the project's pragmas
    return create_async_engine(database_url, poolclass=NullPool)


async def _prepare(database_url: str, app: Starlette) -> None:
    engine = create_engine(database_url)
    try:
        await clear_database(engine)
    finally:
        await engine.dispose()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=AUTH) as client:
        for path, body in SEED:
            response = await client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)


@pytest.fixture
def apps(sqlite_url: str, postgres_url: str) -> Iterator[dict[str, Starlette]]:
    """The admin app on an emptied, seeded SQLite database and on a PostgreSQL one."""
    out = {}
    for backend, url in (("sqlite", sqlite_url), ("postgres", postgres_url)):
        out[backend] = build_admin_app(_unpooled(url), MASTER)
        asyncio.run(_prepare(url, out[backend]))
    yield out


def test_management_api_conforms_to_its_openapi_document(apps: dict[str, Starlette]) -> None:
    report = Report()
    run_operations(schemathesis.openapi.from_asgi("/openapi.json", apps["sqlite"]), apps, report)
    print("\n" + report.summary())
    unique = sorted(set(report.failures))
    assert not unique, f"{len(unique)} distinct failures:\n" + "\n".join(unique[:20])
    assert report.cases["positive"] >= EXAMPLES * 45, report.summary()

"""Issue #12's promises for batches through the gateway, with the official openai and
anthropic SDKs against the mock provider (in-process gateway, SQLite, in-process counters):

* a batch whose worst case does not fit a budget is refused at creation with the budget
  error, before the provider sees it, leaving no row and no reservation;
* a batch in flight holds its worst case, so other spending cannot pass the budget, and
  settling it (far below its worst case) gives the rest back;
* a cancelled batch bills exactly the lines it ran (priced one by one here from its output
  with ``spendgate.completion_cost``) and releases the rest;
* another key gets the same 404 as for an unknown id on every object (and does not see it
  in lists); a team admin of the creator's team and the master key do see them;
* a malformed input file is a 400 naming line and field and leaves nothing anywhere;
  too large is 413, another purpose 422;
* lists page newest first with ``after``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types.messages.batch_create_params import Request
from batch_rules_helpers import (
    error_of,
    jsonl,
    key_window,
    keys_rows,
    line,
    managed_rows,
    settle,
    status_of,
    to_nanos,
)
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config
from limits_helpers import Admin

import spendgate
from spendgate.batches import billed_at
from spendgate.core.keys import hash_key
from spendgate.core.money import to_nano
from spendgate.providers.mock import MockServer
from spendgate.stores.database.models import ManagedObject

USD = 10**9
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"]


def _config(mock: MockServer, tmp: Path, **general: Any) -> Any:
    models = [
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": mock.url}},
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": mock.url},
        },
        {
            "model_name": "claude-sonnet-4-6",
            "litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_base": mock.base_url},
        },
    ]
    settings = {
        "batch_poll_interval_seconds": 3600,  # the tests run the cycles (POST /batches/poll)
        "batch_poll_jitter_seconds": 0,
        "key_cache_ttl_seconds": 60,
        **general,
    }
    return make_config(
        mock.base_url,
        tmp / "batches.db",
        tmp / "journal",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings=settings,
    )


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    config = _config(mock_server, tmp_path_factory.mktemp("batches"), max_batch_file_size_mb=1)
    assert config.general_settings.forward_client_headers_to_llm_api  # x-mock-* reach the mock
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def db(gw: GatewayServer) -> Path:
    return Path(str(gw.app.state.services.engine.url.database))


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


class Clients:
    """SDK clients of one key on the gateway (closed at the end of the test)."""

    def __init__(self, gw: GatewayServer) -> None:
        self.gw = gw
        self._open: list[Any] = []

    def openai(self, key: str) -> openai.OpenAI:
        c = openai.OpenAI(base_url=self.gw.url, api_key=key, max_retries=0, timeout=30)
        self._open.append(c)
        return c

    def anthropic(self, key: str) -> anthropic.Anthropic:
        c = anthropic.Anthropic(base_url=self.gw.base_url, api_key=key, max_retries=0, timeout=30)
        self._open.append(c)
        return c

    def close(self) -> None:
        for c in self._open:
            c.close()


@pytest.fixture
def clients(gw: GatewayServer, mock: MockServer) -> Iterator[Clients]:
    made = Clients(gw)
    yield made
    made.close()


def _upload(client: openai.OpenAI, lines: list[dict[str, Any]], name: str = "in.jsonl") -> str:
    return client.files.create(file=(name, jsonl(lines)), purpose="batch").id


def _create(client: openai.OpenAI, file_id: str, **headers: str) -> str:
    return client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers=headers or None,
    ).id


def _message_requests(n: int, *, max_tokens: int = 8) -> list[Request]:
    return [
        Request(
            custom_id=f"m{i}",
            params={
                "model": "claude-sonnet-4-6",
                "max_tokens": max_tokens + i % 9,
                "messages": [{"role": "user", "content": "w " * (1 + i)}],
            },
        )
        for i in range(n)
    ]


def _posts(mock: MockServer, path: str) -> list[dict[str, Any]]:
    return [r for r in mock.requests() if r["method"] == "POST" and r["path"].rstrip("/") == path]


def _assert_budget_error(status: int, error: dict[str, Any], raw_key: str) -> None:
    assert status == 402, (status, error)  # general_settings.budget_exceeded_status, default 402
    assert error["type"] == "budget_exceeded", error
    assert f"budget exceeded for key:{hash_key(raw_key)}" in error["message"], error


# -- 1. refused at creation ------------------------------------------------------------------


def test_a_batch_over_the_budget_is_refused_before_the_provider_sees_it(
    gw: GatewayServer, admin: Admin, db: Path, clients: Clients, mock: MockServer
) -> None:
    raw = admin.key(max_budget=0.01)
    client = clients.openai(raw)
    # 10 lines × 1000 output tokens × $5/M (gpt-4o at the batch tier) = $0.05 > $0.01.
    file_id = _upload(client, [line(f"r{i}", max_tokens=1000) for i in range(10)])
    provider_batches = len(mock.app.batches.list(1000, None)["data"])
    with pytest.raises(openai.APIStatusError) as caught:
        _create(client, file_id)
    _assert_budget_error(caught.value.status_code, error_of(caught.value), raw)
    assert _posts(mock, "/v1/batches") == []
    assert len(mock.app.batches.list(1000, None)["data"]) == provider_batches
    assert keys_rows(db, raw, "batch") == [] and client.batches.list().data == []
    assert key_window(admin.http, raw) == (0, 0)

    # The same for an Anthropic message batch: 10 × ~1000 tokens × $7.5/M = $0.075 > $0.01.
    with pytest.raises(anthropic.APIStatusError) as refused:
        clients.anthropic(raw).messages.batches.create(requests=_message_requests(10, max_tokens=1000))
    _assert_budget_error(refused.value.status_code, error_of(refused.value), raw)
    assert _posts(mock, "/v1/messages/batches") == []
    assert keys_rows(db, raw, "batch") == []
    assert key_window(admin.http, raw) == (0, 0)


# -- 2. the reservation of a batch in flight -------------------------------------------------


def test_a_batch_in_flight_holds_its_worst_case_until_it_is_settled(
    gw: GatewayServer, admin: Admin, db: Path, clients: Clients
) -> None:
    raw = admin.key(max_budget=1.0)
    client = clients.openai(raw)
    # 12 lines × (5 prompt tokens × $1.25/M + 16000 output tokens × $5/M) = $0.960075 reserved.
    file_id = _upload(client, [line(f"r{i}", max_tokens=16_000) for i in range(12)])
    worst = 12 * (5 * 1250 + 16_000 * 5000)
    batch_id = _create(client, file_id, **{"x-mock-completion-tokens": "1", "x-mock-batch-polls": "3"})
    assert key_window(admin.http, raw) == (0, worst)

    def live_call() -> Any:  # worst case 10000 × $10/M = $0.10 > the $0.039925 left
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=10_000
        )

    with pytest.raises(openai.APIStatusError) as caught:
        live_call()
    _assert_budget_error(caught.value.status_code, error_of(caught.value), raw)

    row = settle(admin.http, db, batch_id)
    bill = row["cost_nanos"]
    assert 0 < bill < worst // 100  # each line generated 1 token, not 16000
    assert key_window(admin.http, raw) == (bill, 0)
    answer = live_call()
    assert answer.http_response.status_code == 200
    assert to_nanos(answer.headers["x-spendgate-response-cost"]) > 0


# -- 3. a cancelled batch bills what it ran ----------------------------------------------------


def _billed_at(api: str, provider_batch: dict[str, Any]) -> datetime:
    return billed_at(ManagedObject(api=api, created_at=datetime.now(UTC)), provider_batch)


def test_a_cancelled_batch_bills_exactly_the_lines_it_ran(
    gw: GatewayServer, admin: Admin, db: Path, clients: Clients
) -> None:
    raw = admin.key(max_budget=100)
    client = clients.openai(raw)
    lines = [line(f"r{i}", max_tokens=5 + i % 11, words=1 + i % 37) for i in range(500)]
    file_id = _upload(client, lines)
    batch_id = _create(
        client, file_id, **{"x-mock-batch-done-on-cancel": "100", "x-mock-batch-polls": "1000"}
    )
    reserved = key_window(admin.http, raw)[1]
    assert reserved > 0
    assert client.batches.cancel(batch_id).status in ("cancelling", "cancelled")

    row = settle(admin.http, db, batch_id)
    raw_batch = client.batches.with_raw_response.retrieve(batch_id)
    batch = raw_batch.parse()
    assert batch.status == "cancelled" and batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (500, 100)
    assert batch.output_file_id is not None
    output = client.files.content(batch.output_file_id).text.splitlines()
    ran = [json.loads(text) for text in output if text.strip()]
    assert [item["custom_id"] for item in ran] == [f"r{i}" for i in range(100)]
    at = _billed_at("openai", batch.model_dump(mode="json"))
    bill = sum(
        to_nano(spendgate.completion_cost(item["response"]["body"], batch=True, at=at)) for item in ran
    )
    assert 0 < bill < reserved
    assert row["cost_nanos"] == bill and not row["unpriced"]
    assert to_nanos(raw_batch.headers["x-spendgate-response-cost"]) == bill
    assert key_window(admin.http, raw) == (bill, 0)
    events = Ledger(db).wait(1, "batch_id = ? OR event_id LIKE ?", (batch_id, f"batch:{batch_id}%"))
    assert [(e["event_id"], e["cost_nanos"]) for e in events] == [(f"batch:{batch_id}", bill)]


def test_a_cancelled_message_batch_bills_exactly_the_requests_it_ran(
    gw: GatewayServer, admin: Admin, db: Path, clients: Clients
) -> None:
    raw = admin.key(max_budget=100)
    client = clients.anthropic(raw)
    created = client.messages.batches.create(
        requests=_message_requests(40),
        extra_headers={"x-mock-batch-done-on-cancel": "7", "x-mock-batch-polls": "1000"},
    )
    reserved = key_window(admin.http, raw)[1]
    assert reserved > 0
    client.messages.batches.cancel(created.id)

    row = settle(admin.http, db, created.id)
    raw_batch = client.messages.batches.with_raw_response.retrieve(created.id)
    batch = raw_batch.parse()
    assert batch.processing_status == "ended"
    assert (batch.request_counts.succeeded, batch.request_counts.canceled) == (7, 33)
    results = list(client.messages.batches.results(created.id))
    ran = [r for r in results if r.result.type == "succeeded"]
    assert [r.custom_id for r in ran] == [f"m{i}" for i in range(7)]
    at = _billed_at("anthropic", batch.model_dump(mode="json"))
    bill = 0
    for r in ran:
        assert r.result.type == "succeeded"
        bill += to_nano(
            spendgate.completion_cost(r.result.message.model_dump(mode="json"), batch=True, at=at)
        )
    assert 0 < bill < reserved
    assert row["cost_nanos"] == bill
    assert to_nanos(raw_batch.headers["x-spendgate-response-cost"]) == bill
    assert key_window(admin.http, raw) == (bill, 0)


# -- 4. who sees what ----------------------------------------------------------------------------


def _ids(page: Any) -> set[str]:
    return {item.id for item in page}


@dataclass(frozen=True)
class Owned:
    batch: str
    input_file: str
    output_file: str
    message_batch: str


def _assert_hidden(gw: GatewayServer, clients: Clients, raw: str, ids: Owned) -> None:
    """``raw`` gets a 404 on every object of ``ids``, as for an unknown id, and lists none."""
    other, other_anthropic = clients.openai(raw), clients.anthropic(raw)
    calls = {
        "batch retrieve": lambda: other.batches.retrieve(ids.batch),
        "batch cancel": lambda: other.batches.cancel(ids.batch),
        "input retrieve": lambda: other.files.retrieve(ids.input_file),
        "input content": lambda: other.files.content(ids.input_file),
        "input delete": lambda: other.files.delete(ids.input_file),
        "output retrieve": lambda: other.files.retrieve(ids.output_file),
        "output content": lambda: other.files.content(ids.output_file),
        "output delete": lambda: other.files.delete(ids.output_file),
        "message batch retrieve": lambda: other_anthropic.messages.batches.retrieve(ids.message_batch),
        "message batch cancel": lambda: other_anthropic.messages.batches.cancel(ids.message_batch),
        "message batch results": lambda: list(other_anthropic.messages.batches.results(ids.message_batch)),
    }
    assert {name: status_of(call) for name, call in calls.items()} == dict.fromkeys(calls, 404)
    with httpx.Client(base_url=gw.base_url, headers={"x-api-key": raw}) as http:
        results = http.get(f"/v1/messages/batches/{ids.message_batch}/results")
    assert results.status_code == 404, results.text
    # The same answer as for an id that does not exist: nothing tells the two apart.
    unknown_batch, unknown_file = "batch_sg" + "0" * 32, "file-sg" + "0" * 32
    with pytest.raises(openai.NotFoundError) as theirs:
        other.batches.retrieve(ids.batch)
    with pytest.raises(openai.NotFoundError) as nobodys:
        other.batches.retrieve(unknown_batch)
    said, unknown = error_of(theirs.value), error_of(nobodys.value)
    assert said["message"].replace(ids.batch, "?") == unknown["message"].replace(unknown_batch, "?")
    assert (said["type"], said["code"], said["param"]) == (unknown["type"], unknown["code"], unknown["param"])
    assert status_of(lambda: other.files.retrieve(unknown_file)) == 404
    assert ids.batch not in _ids(other.batches.list())
    assert not {ids.input_file, ids.output_file} & _ids(other.files.list())
    assert ids.message_batch not in _ids(other_anthropic.messages.batches.list())


def test_only_the_creator_its_team_admin_and_the_master_key_see_batches_and_files(
    gw: GatewayServer, admin: Admin, clients: Clients, tmp_path: Path
) -> None:
    tag = tmp_path.name[-12:]
    team, creator, lead, member, stranger = (
        f"{n}-{tag}" for n in ("team", "maker", "lead", "member", "stranger")
    )
    admin.post("/team/new", {"team_id": team})
    for user in (creator, lead, member, stranger):
        admin.post("/user/new", {"user_id": user, "user_role": "internal_user", "auto_create_key": False})
    admin.post(
        "/team/member_add",
        {
            "team_id": team,
            "member": [
                {"user_id": creator, "role": "user"},
                {"user_id": member, "role": "user"},
                {"user_id": lead, "role": "admin"},
            ],
        },
    )
    creator_key = admin.key(user_id=creator, team_id=team)
    own, own_anthropic = clients.openai(creator_key), clients.anthropic(creator_key)
    input_id = _upload(own, [line(f"r{i}") for i in range(3)])
    batch_id = _create(own, input_id, **{"x-mock-batch-polls": "1"})
    done = own.batches.retrieve(batch_id)
    assert done.status == "completed" and done.output_file_id is not None
    output_id = done.output_file_id
    message_batch = own_anthropic.messages.batches.create(
        requests=_message_requests(2), extra_headers={"x-mock-batch-polls": "1"}
    )
    assert own_anthropic.messages.batches.retrieve(message_batch.id).processing_status == "ended"

    ids = Owned(batch_id, input_id, output_id, message_batch.id)
    _assert_hidden(gw, clients, admin.key(user_id=member, team_id=team), ids)  # same team, not admin
    _assert_hidden(gw, clients, admin.key(user_id=stranger), ids)

    # Nothing the outsiders tried changed anything.
    assert own.files.retrieve(input_id).id == input_id
    assert own.batches.retrieve(batch_id).status == "completed"

    for raw in (admin.key(user_id=lead), MASTER_KEY):
        seer, seer_anthropic = clients.openai(raw), clients.anthropic(raw)
        assert seer.batches.retrieve(batch_id).id == batch_id
        assert seer.files.retrieve(input_id).id == input_id and seer.files.retrieve(output_id).id == output_id
        assert len(seer.files.content(output_id).text.splitlines()) == 3
        assert batch_id in _ids(seer.batches.list(limit=100))
        assert {input_id, output_id} <= _ids(seer.files.list())
        assert seer_anthropic.messages.batches.retrieve(message_batch.id).id == message_batch.id
        assert len(list(seer_anthropic.messages.batches.results(message_batch.id))) == 2
        assert message_batch.id in _ids(seer_anthropic.messages.batches.list(limit=100))


# -- 5. malformed input ------------------------------------------------------------------------


def _good(n: int) -> list[bytes]:
    return [json.dumps(line(f"r{i}")).encode() for i in range(n)]


def _dumps(item: dict[str, Any]) -> bytes:
    return json.dumps(item).encode()


def _without(item: dict[str, Any], name: str) -> bytes:
    return _dumps({k: v for k, v in item.items() if k != name})


MALFORMED: dict[str, tuple[list[bytes], str, str]] = {
    # case: (the file's lines, the error's param, what its message says)
    "not JSON on line 3": ([*_good(2), b'{"custom_id": "r2", "method": "POST",'], "line 3", "not valid JSON"),
    "missing custom_id": (
        [*_good(1), _without(line("r1"), "custom_id")],
        "line 2: custom_id",
        "non-empty string",
    ),
    "duplicate custom_id": (
        [*_good(2), _dumps(line("r0"))],
        "line 3: custom_id",
        "used twice (first at line 1)",
    ),
    "method GET": ([*_good(1), _dumps(line("r1", method="GET"))], "line 2: method", 'must be "POST"'),
    "url mismatch": (
        [*_good(1), _dumps(line("r1", url="/v1/embeddings"))],
        "line 2: url",
        "the batch's endpoint",
    ),
    "unknown model": (
        [*_good(1), _dumps(line("r1", model="no-such-model"))],
        "line 2: body.model",
        "does not exist",
    ),
    "model not allowed for the key": (
        [*_good(1), _dumps(line("r1", model="gpt-4o-mini"))],
        "line 2: body.model",
        "may not use model 'gpt-4o-mini'",
    ),
    "blank line in the middle": ([*_good(1), b"", *_good(3)[1:]], "line 2", "blank line between requests"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_file_is_a_400_naming_line_and_field_and_leaves_nothing(
    gw: GatewayServer, admin: Admin, db: Path, clients: Clients, mock: MockServer, case: str
) -> None:
    lines, param, says = MALFORMED[case]
    raw = admin.key(models=["gpt-4o"])
    client = clients.openai(raw)
    provider_files = len(mock.app.files.list())
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("in.jsonl", b"\n".join(lines) + b"\n"), purpose="batch")
    error = error_of(caught.value)
    assert error["param"] == param, error
    assert error["message"].startswith(param.split(":")[0] + ":") and says in error["message"], error
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_batch_line", error
    assert _posts(mock, "/v1/files") == [] and len(mock.app.files.list()) == provider_files
    assert keys_rows(db, raw, "file") == [] and client.files.list().data == []


def test_an_oversized_file_is_413_and_another_purpose_422(
    mock_server: MockServer,
    gw: GatewayServer,
    admin: Admin,
    db: Path,
    clients: Clients,
    mock: MockServer,
    tmp_path: Path,
) -> None:
    tiny = _config(mock_server, tmp_path, max_batch_file_size_mb=0.001)  # 1048 bytes
    data = jsonl([line(f"r{i}") for i in range(20)])
    assert len(data) > 2000
    provider_files = len(mock.app.files.list())
    with (
        GatewayServer(tiny) as small,
        openai.OpenAI(base_url=small.url, api_key=MASTER_KEY, max_retries=0) as c,
    ):
        with pytest.raises(openai.APIStatusError) as caught:
            c.files.create(file=("in.jsonl", data), purpose="batch")
        assert caught.value.status_code == 413, error_of(caught.value)
        assert c.files.list().data == []
        tiny_db = Path(str(small.app.state.services.engine.url.database))
        with anthropic.Anthropic(base_url=small.base_url, api_key=MASTER_KEY, max_retries=0) as a:
            with pytest.raises(anthropic.APIStatusError) as too_big:
                a.messages.batches.create(requests=_message_requests(20))
        assert too_big.value.status_code == 413, error_of(too_big.value)
        assert managed_rows(tiny_db) == []
    assert _posts(mock, "/v1/files") == [] and len(mock.app.files.list()) == provider_files
    assert _posts(mock, "/v1/messages/batches") == []

    raw = admin.key()
    client = clients.openai(raw)
    with pytest.raises(openai.UnprocessableEntityError) as wrong:
        client.files.create(file=("in.jsonl", jsonl([line("r0")])), purpose="assistants")
    assert error_of(wrong.value)["param"] == "purpose"
    assert _posts(mock, "/v1/files") == [] and keys_rows(db, raw, "file") == []


# -- 6. pagination -----------------------------------------------------------------------------


def _pages(fetch: Any) -> list[list[str]]:
    """Every page of a list with ``limit=2``, following ``after`` = the last id."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = fetch(after)
        pages.append([item.id for item in page.data])
        if not page.has_more:
            return pages
        after = page.data[-1].id
        assert len(pages) < 10


def test_lists_page_newest_first_with_after(admin: Admin, clients: Clients) -> None:
    client = clients.openai(admin.key())
    files = [_upload(client, [line(f"r{i}") for i in range(2)], name=f"in{n}.jsonl") for n in range(5)]
    batches = [_create(client, files[0], **{"x-mock-batch-polls": "1000"}) for _ in range(5)]
    newest_first = list(reversed(batches))

    pages = _pages(lambda after: client.batches.list(limit=2, **({"after": after} if after else {})))
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert [b.id for b in client.batches.list(limit=2)] == newest_first  # the SDK's own paging

    pages = _pages(lambda after: client.files.list(limit=2, **({"after": after} if after else {})))
    assert pages == [files[::-1][0:2], files[::-1][2:4], files[::-1][4:]]
    assert [f.id for f in client.files.list(limit=2)] == files[::-1]

"""The files, batches and message batches routes attacked as a hostile client would (issue
#12, DESIGN §4): malformed multipart, bodies of the wrong JSON type, ids that are not ids,
query parameters that are not numbers, objects of another key or of another kind, a provider
that refuses, hangs or is down, and a burst of concurrent creates against one budget.

What each case must get: the documented status with the OpenAI error shape, never a 500 or
a traceback, never a partial write (no row, no file or batch at the provider, no reservation
left), and never a look at or a change of another key's object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from batch_rules_helpers import batch_row, jsonl, key_window, keys_rows, line, managed_rows, settle
from gateway_helpers import MASTER_KEY, GatewayServer, free_port, make_config
from limits_helpers import Admin

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer

USD = 10**9


def _config(mock: MockServer, tmp: Path) -> Any:
    dead = f"http://127.0.0.1:{free_port()}"
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
        {
            "model_name": "claude-haiku-4-5",
            "litellm_params": {"model": "anthropic/claude-haiku-4-5", "api_base": mock.base_url},
        },
        {"model_name": "down", "litellm_params": {"model": "openai/gpt-4o", "api_base": f"{dead}/v1"}},
        {
            "model_name": "down-claude",
            "litellm_params": {"model": "anthropic/claude-sonnet-4-6", "api_base": dead},
        },
        {
            "model_name": "slow",
            "litellm_params": {"model": "openai/gpt-4o", "api_base": mock.url, "timeout": 0.5},
        },
    ]
    return make_config(
        mock.base_url,
        tmp / "hostile.db",
        tmp / "journal",
        model_list=models,
        router_settings={"fallbacks": [], "num_retries": 0},
        general_settings={
            "batch_poll_interval_seconds": 3600,
            "batch_poll_jitter_seconds": 0,
            "key_cache_ttl_seconds": 60,
            "max_batch_file_size_mb": 1,
        },
    )


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with GatewayServer(_config(mock_server, tmp_path_factory.mktemp("hostile"))) as server:
        yield server


@pytest.fixture(scope="module")
def db(gw: GatewayServer) -> Path:
    return Path(str(gw.app.state.services.engine.url.database))


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


class Http:
    """Raw HTTP clients of the gateway, one per key (closed at the end of the test)."""

    def __init__(self, gw: GatewayServer) -> None:
        self.gw = gw
        self._open: list[httpx.Client] = []

    def __call__(self, key: str) -> httpx.Client:
        c = httpx.Client(
            base_url=self.gw.base_url,
            headers={"authorization": f"Bearer {key}", "x-api-key": key},
            timeout=30,
        )
        self._open.append(c)
        return c

    def close(self) -> None:
        for c in self._open:
            c.close()


@pytest.fixture
def http(gw: GatewayServer, mock: MockServer) -> Iterator[Http]:
    made = Http(gw)
    yield made
    made.close()


# -- helpers -------------------------------------------------------------------------------


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of an answer that must be ``status`` in the OpenAI error shape (or
    Anthropic's envelope around it), with no traceback."""
    assert r.status_code == status, (r.status_code, r.text[:2000])
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text
    body = r.json()
    error = body["error"]
    assert isinstance(error, dict), body
    assert {"message", "type"} <= set(error), body
    assert isinstance(error["message"], str) and error["message"], body
    if body.get("type") != "error":  # OpenAI's shape: exactly these four fields
        assert set(body) == {"error"} and set(error) == {"message", "type", "param", "code"}, body
    return dict(error)


def _upload(c: httpx.Client, lines: list[dict[str, Any]], **fields: str) -> httpx.Response:
    return c.post(
        "/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch", **fields}
    )


def _file(c: httpx.Client, lines: list[dict[str, Any]]) -> str:
    r = _upload(c, lines)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _create(c: httpx.Client, file_id: str, **headers: str) -> httpx.Response:
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return c.post("/v1/batches", json=body, headers=headers)


def _batch(c: httpx.Client, file_id: str, **headers: str) -> str:
    r = _create(c, file_id, **headers)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _message_requests(n: int, model: str = "claude-sonnet-4-6", max_tokens: int = 8) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"m{i}",
            "params": {
                "model": model,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "hi"}],
            },
        }
        for i in range(n)
    ]


def _posts(mock: MockServer, path: str) -> list[dict[str, Any]]:
    return [r for r in mock.requests() if r["method"] == "POST" and r["path"].rstrip("/") == path]


def _rows(db: Path, raw: str) -> list[dict[str, Any]]:
    return managed_rows(db, "api_key = ?", (hash_key(raw),))


# -- 1. malformed uploads ------------------------------------------------------------------

_GOOD = jsonl([line("r0"), line("r1")])
_B = "sgboundary"


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{_B}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{_B}--\r\n".encode()


_MULTIPART_CASES: dict[str, tuple[str, bytes, int]] = {
    # case: (content-type, body, status)
    "no boundary": (
        "multipart/form-data",
        _multipart(("purpose", None, b"batch"), ("file", "a", _GOOD)),
        400,
    ),
    "wrong boundary": (
        "multipart/form-data; boundary=other",
        _multipart(("purpose", None, b"batch"), ("file", "a", _GOOD)),
        400,
    ),
    "truncated": (
        f"multipart/form-data; boundary={_B}",
        _multipart(("purpose", None, b"batch"), ("file", "a", _GOOD))[:-40],
        400,
    ),
    "two file parts": (
        f"multipart/form-data; boundary={_B}",
        _multipart(("purpose", None, b"batch"), ("file", "a", _GOOD), ("file", "b", _GOOD)),
        400,
    ),
    "no file part": (f"multipart/form-data; boundary={_B}", _multipart(("purpose", None, b"batch")), 400),
    "file as a text field": (
        f"multipart/form-data; boundary={_B}",
        _multipart(("purpose", None, b"batch"), ("file", None, _GOOD)),
        400,
    ),
    "empty body": (f"multipart/form-data; boundary={_B}", b"", 422),  # no purpose
    "json instead of multipart": ("application/json", b'{"purpose": "batch", "file": "x"}', 400),
    "huge text field": (
        f"multipart/form-data; boundary={_B}",
        _multipart(("purpose", None, b"batch"), ("x", None, b"a" * 2_000_000), ("file", "a", _GOOD)),
        413,
    ),
    "no purpose": (f"multipart/form-data; boundary={_B}", _multipart(("file", "a", _GOOD)), 422),
    "17 text fields": (
        f"multipart/form-data; boundary={_B}",
        _multipart(
            ("purpose", None, b"batch"), *((f"f{i}", None, b"x") for i in range(17)), ("file", "a", _GOOD)
        ),
        400,
    ),
}


# A truncated body leaves Starlette's spooled file of the unfinished part to the garbage
# collector (a ResourceWarning, not a leak in CPython); the answer is what is tested here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("case", list(_MULTIPART_CASES))
def test_a_malformed_multipart_upload_is_refused_and_leaves_nothing(
    admin: Admin, db: Path, http: Http, mock: MockServer, case: str
) -> None:
    content_type, body, status = _MULTIPART_CASES[case]
    raw = admin.key()
    r = http(raw).post("/v1/files", content=body, headers={"content-type": content_type})
    _error(r, status)
    assert _posts(mock, "/v1/files") == [] and _rows(db, raw) == []


_BAD_FILES: dict[str, tuple[bytes, str]] = {
    # case: (the file, the param the error names)
    "not UTF-8 on line 2": (json.dumps(line("r0")).encode() + b'\n{"custom_id": "r\xff\xfe1"}\n', "line 2"),
    "latin-1 model name": (
        _GOOD + json.dumps(line("r2")).encode().replace(b"gpt-4o", b"gpt-4\xf6") + b"\n",
        "line 3",
    ),
    "empty file": (b"", "line 1"),
    "only blank lines": (b"\n\n\n", "line 1"),
    "a JSON array line": (b'[{"custom_id": "r0"}]\n', "line 1"),
    "a JSON scalar line": (b"42\n", "line 1"),
    "NUL in the line": (b"\x00" + _GOOD, "line 1"),
}


@pytest.mark.parametrize("case", list(_BAD_FILES))
def test_a_file_that_is_not_jsonl_text_is_a_400_naming_its_line(
    admin: Admin, db: Path, http: Http, mock: MockServer, case: str
) -> None:
    data, param = _BAD_FILES[case]
    raw = admin.key()
    r = http(raw).post("/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"})
    error = _error(r, 400)
    assert str(error["param"]).startswith(param), error
    assert _posts(mock, "/v1/files") == [] and _rows(db, raw) == []


def test_a_file_with_a_utf8_bom_is_accepted(admin: Admin, http: Http) -> None:
    c = http(admin.key())
    r = c.post("/v1/files", files={"file": ("in.jsonl", b"\xef\xbb\xbf" + _GOOD)}, data={"purpose": "batch"})
    assert r.status_code == 200, r.text
    assert r.json()["id"].startswith("file-sg")


def test_an_upload_naming_another_model_than_its_lines_is_a_400(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key()
    error = _error(_upload(http(raw), [line("r0")], target_model_names="gpt-4o-mini"), 400)
    assert error["param"] == "line 1: body.model", error
    assert _posts(mock, "/v1/files") == [] and _rows(db, raw) == []


# -- 2. routing: groups that cannot serve the API, keys that may not use the model ------------


def test_an_openai_file_for_a_group_with_only_anthropic_deployments_is_refused(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key()
    error = _error(_upload(http(raw), [line("r0", model="claude-sonnet-4-6")]), 422)
    assert error["param"] == "model" and "claude-sonnet-4-6" in error["message"], error
    assert _posts(mock, "/v1/files") == [] and _rows(db, raw) == []


def test_a_message_batch_for_an_openai_group_is_refused(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key()
    r = http(raw).post("/v1/messages/batches", json={"requests": _message_requests(2, model="gpt-4o")})
    error = _error(r, 422)
    assert error["param"] == "requests", error
    assert _posts(mock, "/v1/messages/batches") == [] and _rows(db, raw) == []


def test_a_message_batch_mixing_two_models_is_a_400_naming_the_request(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key()
    requests = [*_message_requests(2), *_message_requests(1, model="claude-haiku-4-5")]
    requests[2]["custom_id"] = "other"
    error = _error(http(raw).post("/v1/messages/batches", json={"requests": requests}), 400)
    assert str(error["param"]).startswith("requests[2]") or "3" in str(error["param"]), error
    assert "model" in str(error["param"]), error
    assert _posts(mock, "/v1/messages/batches") == [] and _rows(db, raw) == []


def test_a_key_restricted_to_other_models_cannot_upload_or_create_a_message_batch(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key(models=["gpt-4o-mini"])
    c = http(raw)
    error = _error(_upload(c, [line("r0")]), 400)
    assert error["param"] == "line 1: body.model", error
    r = c.post("/v1/messages/batches", json={"requests": _message_requests(1)})
    assert r.status_code in (400, 403), r.text
    _error(r, r.status_code)
    assert _posts(mock, "/v1/files") == [] and _posts(mock, "/v1/messages/batches") == []
    assert _rows(db, raw) == []


def test_a_team_admin_restricted_to_other_models_cannot_batch_a_members_file(
    admin: Admin, db: Path, http: Http, mock: MockServer, tmp_path: Path
) -> None:
    """A team admin sees its members' files; creating a batch from one still needs the
    caller's key to be allowed the file's model (the batch is billed to the caller)."""
    tag = tmp_path.name[-12:]
    team, member, lead = f"t-{tag}", f"member-{tag}", f"lead-{tag}"
    admin.post("/team/new", {"team_id": team})
    for user in (member, lead):
        admin.post("/user/new", {"user_id": user, "user_role": "internal_user", "auto_create_key": False})
    admin.post(
        "/team/member_add",
        {
            "team_id": team,
            "member": [{"user_id": member, "role": "user"}, {"user_id": lead, "role": "admin"}],
        },
    )
    file_id = _file(http(admin.key(user_id=member, team_id=team)), [line("r0")])
    lead_key = admin.key(user_id=lead, models=["gpt-4o-mini"])
    lead_http = http(lead_key)
    assert lead_http.get(f"/v1/files/{file_id}").status_code == 200  # it may see the file
    _error(_create(lead_http, file_id), 403)
    assert _posts(mock, "/v1/batches") == [] and _rows(db, lead_key) == []


# -- 3. POST /v1/batches bodies -------------------------------------------------------------

_CREATE_BODIES: dict[str, tuple[bytes, int, str | None]] = {
    # case: (body, status, param)
    "a JSON array": (b'[{"input_file_id": "x"}]', 400, None),
    "a JSON string": (b'"hello"', 400, None),
    "a JSON number": (b"42", 400, None),
    "null": (b"null", 400, None),
    "empty": (b"", 400, None),
    "not JSON": (b"{input_file_id: x}", 400, None),
    "not UTF-8": (b'{"input_file_id": "\xff"}', 400, None),
    "deeply nested": (b'{"metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, None),
    "input_file_id a number": (
        b'{"input_file_id": 7, "endpoint": "/v1/chat/completions"}',
        400,
        "input_file_id",
    ),
    "no endpoint": (b'{"input_file_id": "file-sgx"}', 400, "endpoint"),
    "completion_window 48h": (
        b'{"input_file_id": "file-sgx", "endpoint": "/v1/chat/completions", "completion_window": "48h"}',
        422,
        "completion_window",
    ),
    "metadata a list": (
        b'{"input_file_id": "file-sgx", "endpoint": "/v1/chat/completions", "metadata": ["a"]}',
        422,
        "metadata",
    ),
    "metadata not strings": (
        b'{"input_file_id": "file-sgx", "endpoint": "/v1/chat/completions", "metadata": {"a": 1}}',
        422,
        "metadata",
    ),
    "metadata nested": (
        b'{"input_file_id": "file-sgx", "endpoint": "/v1/chat/completions", "metadata": {"a": {"b": "c"}}}',
        422,
        "metadata",
    ),
    "unknown file": (b'{"input_file_id": "file-sgx", "endpoint": "/v1/chat/completions"}', 404, "file_id"),
}


@pytest.mark.parametrize("case", list(_CREATE_BODIES))
def test_a_bad_batch_create_body_is_refused_and_leaves_nothing(
    admin: Admin, db: Path, http: Http, mock: MockServer, case: str
) -> None:
    body, status, param = _CREATE_BODIES[case]
    raw = admin.key(max_budget=10)
    r = http(raw).post("/v1/batches", content=body, headers={"content-type": "application/json"})
    error = _error(r, status)
    if param is not None:
        assert error["param"] == param, error
    assert _posts(mock, "/v1/batches") == [] and _rows(db, raw) == []
    assert key_window(admin.http, raw) == (0, 0)


def test_a_batch_over_the_metadata_limits_is_refused_or_passed_on(admin: Admin, db: Path, http: Http) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0")])
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "metadata": {f"k{i}": "v" * 600 for i in range(100)},
    }
    r = c.post("/v1/batches", json=body)
    if r.status_code != 200:
        _error(r, r.status_code)
        assert 400 <= r.status_code < 500
        assert key_window(admin.http, raw) == (0, 0)
        assert keys_rows(db, raw, "batch") == []


def test_an_endpoint_other_than_the_files_is_a_422(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0")])
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    assert _error(c.post("/v1/batches", json=body), 422)["param"] == "endpoint"
    assert _posts(mock, "/v1/batches") == [] and keys_rows(db, raw, "batch") == []
    assert key_window(admin.http, raw) == (0, 0)


# -- 4. input_file_id that is not this key's batch input file ------------------------------


def test_input_file_id_must_be_this_keys_batch_input_file(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0")])
    batch_id = _batch(c, file_id, **{"x-mock-batch-polls": "1"})
    done = c.get(f"/v1/batches/{batch_id}").json()
    assert done["status"] == "completed", done
    output_id = done["output_file_id"]
    message_batch = c.post("/v1/messages/batches", json={"requests": _message_requests(1)}).json()["id"]
    other_file = _file(http(admin.key()), [line("r0")])
    mock.reset()

    cases = {
        "a batch's output file": (output_id, 422),
        "another key's file": (other_file, 404),
        "a message batch id": (message_batch, 404),
        "a batch id": (batch_id, 404),
        "an unknown file-sg id": ("file-sg" + "0" * 32, 404),
        "a provider-style id": ("file-abc123", 404),
    }
    for name, (given, status) in cases.items():
        error = _error(_create(c, given), status)
        assert error["param"] in ("input_file_id", "file_id"), (name, error)
    assert _posts(mock, "/v1/batches") == []
    batches = keys_rows(db, raw, "batch")
    assert sorted(b["id"] for b in batches) == sorted([batch_id, message_batch])
    assert key_window(admin.http, raw)[1] == sum(b["reserved_nanos"] for b in batches)


# -- 5. ids that are not ids ---------------------------------------------------------------

_HOSTILE_IDS = {
    "path traversal": "..%2F..%2Fkey%2Finfo",
    "dot segments": "file-sg..",
    "10,000 chars": "file-sg" + "a" * 10_000,
    "NUL": "file-sg%00abc",
    "percent-encoded unicode": "file-sg%E2%80%AE%F0%9F%92%A5",
    "invalid percent-encoding": "file-sg%ff%fe",
    "SQL": "file-sg'%20OR%20'1'='1",
    "LIKE wildcard": "file-sg%25",
}

_ID_ROUTES = [
    ("GET", "/v1/files/{id}"),
    ("DELETE", "/v1/files/{id}"),
    ("GET", "/v1/files/{id}/content"),
    ("GET", "/v1/batches/{id}"),
    ("POST", "/v1/batches/{id}/cancel"),
    ("GET", "/v1/messages/batches/{id}"),
    ("POST", "/v1/messages/batches/{id}/cancel"),
    ("GET", "/v1/messages/batches/{id}/results"),
]


@pytest.mark.parametrize("case", list(_HOSTILE_IDS))
def test_a_hostile_id_is_a_404_on_every_route(admin: Admin, http: Http, mock: MockServer, case: str) -> None:
    c = http(admin.key())
    _file(c, [line("r0")])  # the key owns something a wildcard could match
    mock.reset()
    for method, route in _ID_ROUTES:
        r = c.request(method, route.replace("{id}", _HOSTILE_IDS[case]))
        _error(r, 404)
    assert mock.requests() == []  # nothing reached the provider


# -- 6. query parameters -------------------------------------------------------------------

_LISTS = ["/v1/files", "/v1/batches", "/v1/messages/batches"]


@pytest.mark.parametrize(
    "limit",
    [
        "0",
        "-1",
        "abc",
        "1.5",
        "99999999999999999999",
        " 5",
        "0x10",
        "²",
    ],
)
def test_a_bad_limit_is_a_422_on_every_list(admin: Admin, http: Http, limit: str) -> None:
    c = http(admin.key())
    for path in _LISTS:
        error = _error(c.get(path, params={"limit": limit}), 422)
        assert error["param"] == "limit", (path, error)


def test_bad_order_and_both_cursors_are_422(admin: Admin, http: Http) -> None:
    c = http(admin.key())
    assert _error(c.get("/v1/files", params={"order": "sideways"}), 422)["param"] == "order"
    r = c.get("/v1/messages/batches", params={"after_id": "a", "before_id": "b"})
    assert _error(r, 422)["param"] == "before_id"


def test_after_another_keys_id_reveals_nothing(admin: Admin, http: Http) -> None:
    mine, theirs = http(admin.key()), http(admin.key())
    my_file = _file(mine, [line("r0")])
    _batch(mine, my_file, **{"x-mock-batch-polls": "1000"})
    their_file = _file(theirs, [line("r0")])
    their_batch = _batch(theirs, their_file, **{"x-mock-batch-polls": "1000"})
    their_msg = theirs.post("/v1/messages/batches", json={"requests": _message_requests(1)}).json()["id"]
    mine.post("/v1/messages/batches", json={"requests": _message_requests(1)})
    for path, params in (
        ("/v1/files", {"after": their_file}),
        ("/v1/files", {"after": their_file, "order": "asc"}),
        ("/v1/batches", {"after": their_batch}),
        ("/v1/messages/batches", {"after_id": their_msg}),
        ("/v1/messages/batches", {"before_id": their_msg}),
    ):
        r = mine.get(path, params=params)
        assert r.status_code == 200, r.text
        assert r.json()["data"] == [] and r.json()["has_more"] is False, (path, r.json())


# -- 7. lifecycle abuse --------------------------------------------------------------------


def test_cancel_twice_and_cancel_a_completed_batch_never_500(admin: Admin, db: Path, http: Http) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0"), line("r1")])
    running = _batch(c, file_id, **{"x-mock-batch-polls": "1000"})
    first = c.post(f"/v1/batches/{running}/cancel")
    assert first.status_code == 200 and first.json()["status"] in ("cancelling", "cancelled"), first.text
    second = c.post(f"/v1/batches/{running}/cancel")
    if second.status_code != 200:
        _error(second, second.status_code)
        assert 400 <= second.status_code < 500, second.text
    else:
        assert second.json()["status"] in ("cancelling", "cancelled"), second.text

    done = _batch(c, file_id, **{"x-mock-batch-polls": "1"})
    assert c.get(f"/v1/batches/{done}").json()["status"] == "completed"
    r = c.post(f"/v1/batches/{done}/cancel")
    error = _error(r, 400)  # the provider's refusal, passed on
    assert error["type"] != "internal_error", error
    assert batch_row(db, done)["status"] == "completed"


def test_cancel_an_ended_message_batch_and_results_before_it_ended_never_500(
    admin: Admin, http: Http
) -> None:
    c = http(admin.key(max_budget=10))
    running = c.post(
        "/v1/messages/batches",
        json={"requests": _message_requests(2)},
        headers={"x-mock-batch-polls": "1000"},
    ).json()["id"]
    r = c.get(f"/v1/messages/batches/{running}/results")
    assert 400 <= r.status_code < 500, r.text
    _error(r, r.status_code)

    ended = c.post(
        "/v1/messages/batches", json={"requests": _message_requests(2)}, headers={"x-mock-batch-polls": "1"}
    ).json()["id"]
    assert c.get(f"/v1/messages/batches/{ended}").json()["processing_status"] == "ended"
    r = c.post(f"/v1/messages/batches/{ended}/cancel")
    if r.status_code != 200:
        _error(r, r.status_code)
        assert 400 <= r.status_code < 500, r.text


def test_deleting_the_input_file_of_a_running_batch_leaves_the_batch_readable_and_billed(
    admin: Admin, db: Path, http: Http
) -> None:
    """Either the delete is refused while a batch of the file runs, or the batch runs on:
    it stays readable, completes, and is billed once with its reservation released."""
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0"), line("r1")])
    batch_id = _batch(c, file_id, **{"x-mock-batch-polls": "3"})
    r = c.delete(f"/v1/files/{file_id}")
    if r.status_code == 200:
        assert r.json() == {"id": file_id, "object": "file", "deleted": True}
        _error(c.get(f"/v1/files/{file_id}"), 404)
        _error(_create(c, file_id), 404)  # gone for a new batch
    else:
        _error(r, 409)
    for _ in range(3):
        got = c.get(f"/v1/batches/{batch_id}")
        assert got.status_code == 200, got.text
    assert got.json()["status"] == "completed" and got.json()["input_file_id"] == file_id
    row = settle(admin.http, db, batch_id, timeout=5)
    assert row["cost_nanos"] > 0 and key_window(admin.http, raw) == (row["cost_nanos"], 0)


def test_deleting_a_file_twice_is_a_404(admin: Admin, http: Http) -> None:
    c = http(admin.key())
    file_id = _file(c, [line("r0")])
    assert c.delete(f"/v1/files/{file_id}").status_code == 200
    _error(c.delete(f"/v1/files/{file_id}"), 404)


def test_a_read_only_admin_cannot_cancel_or_delete(admin: Admin, http: Http, tmp_path: Path) -> None:
    owner = http(admin.key(max_budget=10))
    file_id = _file(owner, [line("r0")])
    batch_id = _batch(owner, file_id, **{"x-mock-batch-polls": "1000"})
    viewer = f"viewer-{tmp_path.name[-12:]}"
    admin.post("/user/new", {"user_id": viewer, "user_role": "proxy_admin_viewer", "auto_create_key": False})
    c = http(admin.key(user_id=viewer))
    assert c.get(f"/v1/batches/{batch_id}").status_code == 200
    _error(c.post(f"/v1/batches/{batch_id}/cancel"), 403)
    _error(c.delete(f"/v1/files/{file_id}"), 403)
    assert owner.get(f"/v1/files/{file_id}").status_code == 200


def test_no_key_and_a_wrong_method_get_the_error_shape(gw: GatewayServer, http: Http) -> None:
    with httpx.Client(base_url=gw.base_url) as anonymous:
        _error(anonymous.get("/v1/batches"), 401)
        _error(anonymous.post("/v1/files"), 401)
    c = http(MASTER_KEY)
    _error(c.put("/v1/batches"), 405)
    _error(c.delete("/v1/batches/batch_sgx"), 405)


# -- 8. the provider refuses, hangs or is down ---------------------------------------------


def test_an_upload_to_a_dead_provider_is_502_and_leaves_no_row(admin: Admin, db: Path, http: Http) -> None:
    raw = admin.key()
    error = _error(_upload(http(raw), [line("r0", model="down")]), 502)
    assert error["type"] == "upstream_error", error
    assert _rows(db, raw) == []


def test_an_upload_the_provider_refuses_is_passed_on_and_leaves_no_row(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key()
    mock.queue_faults({"status": 503, "path": "/v1/files"})
    _error(_upload(http(raw), [line("r0")]), 502)
    mock.reset()
    mock.queue_faults({"status": 400, "path": "/v1/files", "error_message": "bad file"})
    _error(_upload(http(raw), [line("r0")]), 400)
    assert _rows(db, raw) == []


def test_an_upload_that_hangs_is_504_and_leaves_no_row(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key()
    mock.queue_faults({"hang": True, "path": "/v1/files"})
    _error(_upload(http(raw), [line("r0", model="slow")]), 504)
    assert _rows(db, raw) == []


@pytest.mark.parametrize("fault", [{"status": 503, "times": 5}, {"status": 500, "times": 5}, {"hang": True}])
def test_a_create_the_provider_fails_leaves_no_row_and_no_reservation(
    admin: Admin, db: Path, http: Http, mock: MockServer, fault: dict[str, Any]
) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0", model="slow"), line("r1", model="slow")])
    mock.queue_faults({**fault, "path": "/v1/batches"})
    _error(_create(c, file_id), 504 if fault.get("hang") else 502)
    assert keys_rows(db, raw, "batch") == []
    assert key_window(admin.http, raw) == (0, 0)
    r = c.get("/v1/batches")
    assert r.status_code == 200 and r.json()["data"] == [], r.text


def test_a_create_the_provider_refuses_with_400_is_passed_on_with_nothing_left(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0")])
    mock.queue_faults({"status": 400, "path": "/v1/batches", "error_message": "no such file"})
    error = _error(_create(c, file_id), 400)
    assert "no such file" in error["message"], error
    assert keys_rows(db, raw, "batch") == [] and key_window(admin.http, raw) == (0, 0)


def test_a_message_batch_to_a_dead_provider_is_502_with_nothing_left(
    admin: Admin, db: Path, http: Http
) -> None:
    raw = admin.key(max_budget=10)
    requests = _message_requests(2, model="down-claude")
    _error(http(raw).post("/v1/messages/batches", json={"requests": requests}), 502)
    assert _rows(db, raw) == [] and key_window(admin.http, raw) == (0, 0)


def test_a_retrieve_while_the_provider_is_down_is_502_and_changes_nothing(
    admin: Admin, db: Path, http: Http, mock: MockServer
) -> None:
    raw = admin.key(max_budget=10)
    c = http(raw)
    file_id = _file(c, [line("r0")])
    batch_id = _batch(c, file_id, **{"x-mock-batch-polls": "1000"})
    before = batch_row(db, batch_id)
    reserved = key_window(admin.http, raw)
    mock.queue_faults({"status": 503, "path": "/batches/{id}", "times": 5})
    _error(c.get(f"/v1/batches/{batch_id}"), 502)
    mock.queue_faults({"status": 503, "path": "/batches/{id}/cancel", "times": 5})
    _error(c.post(f"/v1/batches/{batch_id}/cancel"), 502)
    after = batch_row(db, batch_id)
    assert (after["status"], after["settled_at"], after["reserved_nanos"]) == (
        before["status"],
        None,
        before["reserved_nanos"],
    )
    assert key_window(admin.http, raw) == reserved


def test_file_content_while_the_provider_is_down_is_502(admin: Admin, http: Http, mock: MockServer) -> None:
    c = http(admin.key())
    file_id = _file(c, [line("r0")])
    mock.queue_faults({"status": 503, "path": "/files/{id}/content", "times": 5})
    _error(c.get(f"/v1/files/{file_id}/content"), 502)


# -- 9. concurrency against one budget -----------------------------------------------------


def test_concurrent_creates_from_one_file_fit_exactly_the_budget(admin: Admin, db: Path, http: Http) -> None:
    probe_key = admin.key(max_budget=100)
    probe = http(probe_key)
    lines = [line(f"r{i}", max_tokens=1000) for i in range(4)]
    _batch(probe, _file(probe, lines), **{"x-mock-batch-polls": "1000"})
    worst = key_window(admin.http, probe_key)[1]
    assert worst > 0

    fits = 5
    raw = admin.key(max_budget=(fits * worst + worst // 2) / USD)
    c = http(raw)
    file_id = _file(c, lines)

    def create(_: int) -> httpx.Response:
        with httpx.Client(base_url=c.base_url, headers=c.headers, timeout=30) as one:
            return _create(one, file_id, **{"x-mock-batch-polls": "1000"})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(create, range(20)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * fits + [402] * (20 - fits), [(r.status_code, r.text[:200]) for r in answers]
    for r in answers:
        if r.status_code == 402:
            assert _error(r, 402)["type"] == "budget_exceeded"
    assert len(keys_rows(db, raw, "batch")) == fits
    assert key_window(admin.http, raw) == (0, fits * worst)
    listed = c.get("/v1/batches", params={"limit": 100}).json()["data"]
    assert {b["id"] for b in listed} == {r.json()["id"] for r in answers if r.status_code == 200}


# -- 10. POST /v1/messages/batches bodies --------------------------------------------------

_MESSAGE_BODIES: dict[str, bytes] = {
    "a JSON array": b"[]",
    "a JSON scalar": b"1",
    "no requests": b"{}",
    "requests not a list": b'{"requests": {"custom_id": "a"}}',
    "no request": b'{"requests": []}',
    "a request not an object": b'{"requests": ["x"]}',
    "params not an object": b'{"requests": [{"custom_id": "a", "params": "x"}]}',
    "no model": b'{"requests": [{"custom_id": "a", "params": {"max_tokens": 5, "messages": []}}]}',
    "model a number": b'{"requests": [{"custom_id": "a", "params": {"model": 5, "max_tokens": 5}}]}',
    "custom_id a number": json.dumps({"requests": [{**_message_requests(1)[0], "custom_id": 5}]}).encode(),
    "duplicate custom_id": json.dumps({"requests": _message_requests(1) * 2}).encode(),
    "max_tokens negative": json.dumps(
        {"requests": [{"custom_id": "a", "params": {**_message_requests(1)[0]["params"], "max_tokens": -1}}]}
    ).encode(),
    "max_tokens a string": json.dumps(
        {"requests": [{"custom_id": "a", "params": {**_message_requests(1)[0]["params"], "max_tokens": "9"}}]}
    ).encode(),
}


@pytest.mark.parametrize("case", list(_MESSAGE_BODIES))
def test_a_bad_message_batch_body_is_a_400_and_leaves_nothing(
    admin: Admin, db: Path, http: Http, mock: MockServer, case: str
) -> None:
    raw = admin.key(max_budget=10)
    r = http(raw).post(
        "/v1/messages/batches", content=_MESSAGE_BODIES[case], headers={"content-type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text
    _error(r, r.status_code)
    assert _posts(mock, "/v1/messages/batches") == [] and _rows(db, raw) == []
    assert key_window(admin.http, raw) == (0, 0)

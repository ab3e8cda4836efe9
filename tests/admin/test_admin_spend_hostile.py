"""The spend API attacked as a hostile caller would, through HTTP on SQLite and PostgreSQL.

DESIGN §4: bad input gets a 4xx in the OpenAI error shape whose ``param`` names the field,
never a 500 or a stack trace; §9 and docs/spend-api.md: another's spend is never visible, and
a filter naming someone else's key, user or team is a 403. Covered: SQL metacharacters, NUL,
control characters and 10,000-character values in every text parameter; impossible and
extreme dates; bad zones; pages and limits out of range; repeated parameters; another's key
as a raw key, hash or id; a deleted key; a user-less key; a team admin who left the team;
exports while events are written, over an empty range, over ten thousand years (streamed),
and what a CSV cell holds when a tag looks like a spreadsheet formula.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from admin_helpers import MASTER, Api
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from export_helpers import fill, known_events, read_csv
from spendgate.admin import build_admin_app
from spendgate.core.keys import hash_key
from spendgate.core.money import from_nano
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.models import SpendEventRow

RANGE = {"start_date": "2026-11-17", "end_date": "2026-11-19"}
EXPORT = "/global/spend/export"

# Every spend read and the text parameters it takes (beyond dates and timezone).
TEXT_PARAMS: dict[str, tuple[str, ...]] = {
    "/spend/logs": ("api_key", "user_id", "request_id"),
    "/spend/users": ("user_id",),
    "/global/spend/logs": ("api_key",),
    "/global/spend/tags": ("tags",),
    "/global/spend/report": ("api_key", "internal_user_id", "team_id", "customer_id"),
    "/user/daily/activity": ("user_id", "model", "api_key"),
    "/team/daily/activity": ("team_ids", "exclude_team_ids", "model", "api_key"),
    "/tag/daily/activity": ("tags", "model", "api_key"),
    "/customer/daily/activity": ("end_user_ids", "model", "api_key"),
    EXPORT: ("api_key", "user_id", "team_id", "group_by"),
}
DATED = (
    "/spend/logs",
    "/spend/tags",
    "/global/spend",
    "/global/spend/logs",
    "/global/spend/keys",
    "/global/spend/models",
    "/global/spend/teams",
    "/global/spend/tags",
    "/global/spend/report",
    "/user/daily/activity",
    "/team/daily/activity",
    "/tag/daily/activity",
    "/customer/daily/activity",
    EXPORT,
)
ACTIVITY = tuple(p for p in DATED if p.endswith("/daily/activity"))
SPEND_DATED = tuple(p for p in DATED if p not in ACTIVITY and p != EXPORT)

SQL = ("' OR '1'='1", "x'; DROP TABLE spend_events; --", '" OR ""="', "%", "_", "\\", "a%'--")
CONTROL = ("\x01\x02\x1b[31m\x7f", "line\nbreak\r\ttab", "é漢字🙂")
LONG = "x" * 10_000


@dataclass
class World:
    keys: dict[str, str]  # caller -> raw key
    ids: dict[str, str]  # key name -> key_id (what the ledger stores)
    events: list[SpendEvent]


async def seed(api: Api, engine: AsyncEngine) -> World:
    """Callers admin, viewer, tadmin (admin of t1), member (in t1, owns ``target``),
    outsider (in t2, owns ``other``), userless (a key of no user); events on the three keys."""
    keys = {"master": MASTER}
    for user, role in (
        ("admin", "proxy_admin"),
        ("viewer", "proxy_admin_viewer"),
        ("tadmin", "internal_user"),
        ("member", "internal_user"),
        ("outsider", "internal_user"),
    ):
        keys[user] = (await api.ok("POST", "/user/new", {"user_id": user, "user_role": role}))["key"]
    await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "t1",
            "members_with_roles": [
                {"role": "admin", "user_id": "tadmin"},
                {"role": "user", "user_id": "member"},
            ],
        },
    )
    await api.ok(
        "POST",
        "/team/new",
        {"team_id": "t2", "members_with_roles": [{"role": "user", "user_id": "outsider"}]},
    )
    keys["target"] = (await api.ok("POST", "/key/generate", {"user_id": "member", "team_id": "t1"}))["key"]
    keys["other"] = (await api.ok("POST", "/key/generate", {"user_id": "outsider", "team_id": "t2"}))["key"]
    keys["userless"] = (await api.ok("POST", "/key/generate", {"key_alias": "service"}))["key"]
    ids = {name: hash_key(keys[name]) for name in ("target", "other", "userless")}
    known = known_events(
        n=40,
        keys=(ids["target"], ids["other"], ids["userless"]),
        users=("member", "outsider", "nobody"),
        teams=("t1", "t2", None),
    )
    await fill(engine, known)
    return World(keys, ids, [k.event for k in known])


def error_of(status: int, body: Any, expected: int, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error shape with ``expected`` status (and ``param``, when given)."""
    assert status == expected, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert "Traceback" not in error["message"] and 'File "' not in error["message"]
    if param is not None:
        assert error["param"] == param, (param, error)
    return dict(error)


async def get(api: Api, path: str, key: str = MASTER, **params: str) -> tuple[int, Any]:
    """GET ``path``; an export's CSV body comes back as text, everything else as JSON."""
    response = await api.client.get(path, params=params, headers={"authorization": f"Bearer {key}"})
    if response.headers.get("content-type", "").startswith("text/csv"):
        return response.status_code, response.text
    return response.status_code, json.loads(response.text, parse_float=Decimal)


async def event_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(SpendEventRow))).scalar_one())


def needs_range(path: str) -> dict[str, str]:
    return dict(RANGE) if path in DATED else {}


# -- text parameters ------------------------------------------------------------------------


async def test_hostile_text_in_every_text_parameter(api: Api, engine: AsyncEngine) -> None:
    """NUL (which asyncpg refuses) and 10,000 characters are a 422 naming the parameter; SQL
    metacharacters and control characters are plain text: never a 500, the ledger intact."""
    await seed(api, engine)
    before = await event_count(engine)
    for path, names in TEXT_PARAMS.items():
        for name in names:
            for value in ("a\x00b", "\x00", LONG):
                status, body = await get(api, path, **needs_range(path), **{name: value})
                error_of(status, body, 422, name)
            for value in SQL + CONTROL:
                status, body = await get(api, path, **needs_range(path), **{name: value})
                assert status in (200, 422), (path, name, value, status, body)
                if status == 422:  # e.g. a group_by dimension that does not exist
                    error_of(status, body, 422, name)
    assert await event_count(engine) == before


async def test_wildcards_and_quotes_match_nothing(api: Api, engine: AsyncEngine) -> None:
    """``%``, ``_`` and a quote are compared literally (bound parameters, no LIKE)."""
    await seed(api, engine)
    for value in ("%", "_", "' OR '1'='1", "*"):
        for name in ("api_key", "user_id", "request_id"):
            status, body = await get(api, "/spend/logs", **{name: value})
            assert (status, body) == (200, []), (name, value)
        status, body = await get(api, "/global/spend/tags", **RANGE, tags=value)
        assert (status, body) == (200, {"spend_per_tag": []}), value
        status, body = await get(api, "/global/spend/report", **RANGE, team_id=value)
        assert (status, body) == (200, []), value
        status, body = await get(api, "/user/daily/activity", **RANGE, user_id=value)
        assert status == 200 and body["results"] == [], value
        status, body = await get(api, EXPORT, **RANGE, user_id=value)
        assert status == 200 and len(read_csv(body.encode())[1]) == 0, value


# -- dates, zones, pages ----------------------------------------------------------------------


@pytest.mark.parametrize("path", DATED)
async def test_dates_that_do_not_parse_are_422_naming_the_date(api: Api, path: str) -> None:
    for bad in ("2026-02-30", "0000-01-01", "2026-1-1", "2026-13-01", "", "2026-11-01T00:00", "26-11-01"):
        for name in ("start_date", "end_date"):
            status, body = await get(api, path, **{**RANGE, name: bad})
            error_of(status, body, 422, name)
    status, body = await get(api, path, start_date="2026-11-19", end_date="2026-11-17")
    error_of(status, body, 422, "end_date")


@pytest.mark.parametrize(
    "path",
    [*SPEND_DATED, *ACTIVITY, EXPORT],
)
async def test_first_and_last_days_of_the_calendar_are_never_a_500(api: Api, path: str) -> None:
    """0001-01-01 and 9999-12-31 parse as dates; in a zone whose local midnight falls outside
    the calendar in UTC the answer is a 422 naming the date (or an answer), never a 500."""
    for tz in ("America/Los_Angeles", "Asia/Kolkata", "Etc/GMT+12"):
        for day in ("0001-01-01", "9999-12-31"):
            status, body = await get(api, path, start_date=day, end_date=day, timezone=tz)
            if status != 200:
                error = error_of(status, body, 422)
                assert error["param"] in ("start_date", "end_date"), (path, tz, day, error)


@pytest.mark.parametrize("path", DATED)
async def test_timezones_that_are_not_zones_are_422(api: Api, path: str) -> None:
    for zone in (
        "America",
        "UTC+5",
        "",
        "Etc/GMT+14",
        " UTC",
        "../../etc/passwd",
        "Europe/../UTC",
        "Z" * 100,
    ):
        status, body = await get(api, path, **RANGE, timezone=zone)
        error_of(status, body, 422, "timezone")
    status, body = await get(api, path, **RANGE, timezone="Etc/GMT-14")  # the one that exists
    assert status == 200, body


async def test_pages_and_limits_out_of_range_are_422(api: Api) -> None:
    paged = ("/spend/logs", *ACTIVITY)
    for path in paged:
        for name, value in (
            ("page", "0"),
            ("page", "-1"),
            ("page", "99999999999999999999999"),
            ("page", "1.5"),
            ("page", "one"),
            ("page_size", "0"),
            ("page_size", "1001"),
            ("page_size", "-5"),
        ):
            status, body = await get(api, path, **RANGE, **{name: value})
            error_of(status, body, 422, name)
        status, body = await get(api, path, **RANGE, page="1000000", page_size="1000")
        assert status == 200, body
    for path in ("/global/spend/keys", "/global/spend/models"):
        for value in ("0", "-1", "10001", "1e3"):
            status, body = await get(api, path, limit=value)
            error_of(status, body, 422, "limit")
    status, body = await get(api, "/global/spend", page="1")  # not a parameter of this endpoint
    error_of(status, body, 422, "page")


@pytest.mark.parametrize("path", DATED)
async def test_a_repeated_parameter_is_422_naming_it(api: Api, path: str) -> None:
    query = urlencode(
        [
            ("start_date", "2026-11-17"),
            ("end_date", "2026-11-19"),
            ("timezone", "UTC"),
            ("timezone", "Asia/Kolkata"),
        ]
    )
    response = await api.client.get(f"{path}?{query}", headers={"authorization": f"Bearer {MASTER}"})
    error_of(response.status_code, response.json(), 422, "timezone")


# -- the role rule ----------------------------------------------------------------------------


API_KEY_READS = (
    "/spend/logs",
    "/global/spend/logs",
    "/global/spend/report",
    "/user/daily/activity",
    "/team/daily/activity",
    EXPORT,
)


async def test_another_users_key_in_any_form_is_403_and_no_oracle(api: Api, engine: AsyncEngine) -> None:
    """member's key named by outsider as the raw sk- key, its hash or its id: 403 naming
    api_key, with the same answer as a key that does not exist (no existence oracle)."""
    world = await seed(api, engine)
    forms = (world.keys["target"], hash_key(world.keys["target"]), world.ids["target"])
    for path in API_KEY_READS:
        status, missing = await get(api, path, world.keys["outsider"], **RANGE, api_key="sk-no-such-key")
        error_of(status, missing, 403, "api_key")
        for form in forms:
            status, body = await get(api, path, world.keys["outsider"], **RANGE, api_key=form)
            error_of(status, body, 403, "api_key")
            assert body == missing, (path, form)
            status, body = await get(api, path, world.keys["userless"], **RANGE, api_key=form)
            error_of(status, body, 403, "api_key")
            status, body = await get(api, path, world.keys["member"], **RANGE, api_key=form)
            assert status == 200, (path, form, body)


async def test_a_request_id_of_another_is_not_visible(api: Api, engine: AsyncEngine) -> None:
    world = await seed(api, engine)
    theirs = next(e for e in world.events if e.api_key == world.ids["target"] and e.user_id == "member")
    for caller in ("outsider", "userless"):
        status, body = await get(api, "/spend/logs", world.keys[caller], request_id=theirs.event_id)
        assert (status, body) == (200, []), caller
        status, body = await get(
            api, "/spend/logs", world.keys[caller], **RANGE, request_id=theirs.event_id, summarize="false"
        )
        assert (status, body) == (200, []), caller
    status, body = await get(api, "/spend/logs", world.keys["member"], request_id=theirs.event_id)
    assert status == 200 and [r["request_id"] for r in body] == [theirs.event_id]


async def test_a_deleted_keys_id(api: Api, engine: AsyncEngine) -> None:
    """A deleted key's events stay readable by admins under its id; to anyone else who may not
    read it, naming it is a 403 (an id that no key holds any more is still someone's)."""
    world = await seed(api, engine)
    key_id = world.ids["other"]
    await api.ok("POST", "/key/delete", {"keys": [world.keys["other"]]})
    expected = sorted(e.event_id for e in world.events if e.api_key == key_id)
    status, body = await get(api, "/spend/logs", api_key=key_id, page_size="1000")
    assert status == 200
    assert sorted(r["request_id"] for r in body) == expected
    assert {r["api_key"] for r in body} == {key_id}
    status, body = await get(api, "/global/spend/keys", **RANGE)
    assert status == 200 and key_id in {r["api_key"] for r in body}
    for caller in ("member", "tadmin", "userless"):
        for path in API_KEY_READS:
            status, body = await get(api, path, world.keys[caller], **RANGE, api_key=key_id)
            error_of(status, body, 403, "api_key")


async def test_a_userless_key_reads_only_itself(api: Api, engine: AsyncEngine) -> None:
    world = await seed(api, engine)
    key = world.keys["userless"]
    own = [e for e in world.events if e.api_key == world.ids["userless"]]
    assert own and len(own) < len(world.events)

    status, body = await get(api, "/global/spend/report", key, **RANGE, group_by="team")
    assert (status, body) == (200, []), body  # it administers no team
    status, body = await get(api, "/global/spend/report", key, **RANGE, group_by="api_key")
    assert status == 200 and [r["api_key"] for r in body] == [world.ids["userless"]]
    assert body[0]["total_cost"] == from_nano(sum(e.cost_nanos for e in own))
    status, body = await get(api, "/global/spend/teams", key, **RANGE)
    assert status == 200 and body["teams"] == [] and body["total_spend_per_team"] == []
    status, body = await get(api, "/global/spend", key, **RANGE)
    assert status == 200 and body["spend"] == from_nano(sum(e.cost_nanos for e in own))
    status, body = await get(api, "/spend/logs", key, page_size="1000")
    assert status == 200 and sorted(r["request_id"] for r in body) == sorted(e.event_id for e in own)
    status, body = await get(api, "/spend/users", key)
    assert (status, body) == (200, [])
    status, body = await get(api, EXPORT, key, **RANGE)
    assert status == 200
    assert sorted(r["request_id"] for r in read_csv(body.encode())[1]) == sorted(e.event_id for e in own)

    for path, params, param in (
        ("/global/spend/report", {"group_by": "customer"}, "group_by"),
        ("/global/spend/report", {"team_id": "t1"}, "team_id"),
        ("/global/spend/report", {"internal_user_id": "member"}, "internal_user_id"),
        ("/global/spend/report", {"customer_id": "cust-0"}, "customer_id"),
        ("/spend/logs", {"user_id": "member"}, "user_id"),
        ("/user/daily/activity", {"user_id": "member"}, "user_id"),
        ("/team/daily/activity", {"team_ids": "t1"}, "team_ids"),
        (EXPORT, {"team_id": "t2"}, "team_id"),
    ):
        status, body = await get(api, path, key, **RANGE, **params)
        error_of(status, body, 403, param)
    for path in ("/spend/tags", "/global/spend/tags", "/tag/daily/activity", "/customer/daily/activity"):
        status, body = await get(api, path, key, **RANGE)
        error_of(status, body, 403)


async def test_a_team_admin_who_left_the_team_reads_it_no_more(api: Api, engine: AsyncEngine) -> None:
    world = await seed(api, engine)
    key = world.keys["tadmin"]
    status, body = await get(api, "/global/spend/report", key, **RANGE, team_id="t1")
    assert status == 200 and body, body  # while an admin of t1
    await api.ok("POST", "/team/member_delete", {"team_id": "t1", "user_id": "tadmin"})

    for path, params, param in (
        ("/global/spend/report", {"team_id": "t1"}, "team_id"),
        ("/team/daily/activity", {"team_ids": "t1"}, "team_ids"),
        (EXPORT, {"team_id": "t1"}, "team_id"),
        ("/spend/logs", {"api_key": world.keys["target"]}, "api_key"),
        ("/spend/logs", {"user_id": "member"}, "user_id"),
    ):
        status, body = await get(api, path, key, **RANGE, **params)
        error_of(status, body, 403, param)
    status, body = await get(api, "/global/spend/report", key, **RANGE)
    assert (status, body) == (200, [])
    status, body = await get(api, "/spend/logs", key, page_size="1000")
    assert (status, body) == (200, [])  # none of the events is tadmin's own
    status, body = await get(api, EXPORT, key, **RANGE)
    assert status == 200 and read_csv(body.encode())[1] == []
    status, body = await get(api, "/global/spend", key, **RANGE)
    assert status == 200 and body["spend"] == 0


# -- exports ----------------------------------------------------------------------------------


def _event(n: int, at: datetime, key_id: str) -> SpendEvent:
    return SpendEvent(
        event_id=f"live-{n:05d}",
        occurred_at=at,
        cost_nanos=1_000 + n,
        usage=Usage(input_tokens=10 + n, output_tokens=5),
        cost_items={"input": 600 + n, "output": 400},
        api_key=key_id,
        user_id="member",
        team_id="t1",
        model="gpt-4o-mini",
        provider="openai",
        deployment_id="dep-1",
        endpoint="/v1/chat/completions",
        catalogue_version="test",
        price_source="bundled",
    )


def _check_rows(rows: list[dict[str, str]]) -> set[str]:
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)), "an event exported twice"
    for r in rows:
        assert Decimal(r["spend"]) == from_nano(int(r["cost_nanos"])), r
    return set(ids)


async def test_concurrent_exports_while_events_are_written(api: Api, engine: AsyncEngine) -> None:
    """Exports racing the ledger writer: each event at most once, each row whole, and every
    event written before the export started is in it."""
    world = await seed(api, engine)
    repo = LedgerRepository(engine)
    base = datetime(2026, 11, 18, 12, tzinfo=UTC)
    written: list[str] = [e.event_id for e in world.events]
    done = asyncio.Event()

    async def writer() -> None:
        for batch in range(15):
            events = [
                _event(batch * 100 + i, base + timedelta(seconds=batch * 100 + i), world.ids["target"])
                for i in range(100)
            ]
            await repo.write_batch(events)
            written.extend(e.event_id for e in events)
            await asyncio.sleep(0)
        done.set()

    async def exporter(fmt: str) -> list[tuple[str, set[str], set[str]]]:
        seen = []
        while not done.is_set():
            before = set(written)
            status, body = await get(api, EXPORT, **RANGE, format=fmt)
            assert status == 200, body
            rows = read_csv(body.encode())[1]
            if fmt == "csv":
                ids = _check_rows(rows)
            else:
                ids = {r["x_RequestId"] for r in rows}
            seen.append((fmt, before, ids))
        return seen

    results = await asyncio.gather(writer(), exporter("csv"), exporter("csv"), exporter("focus"))
    everything = set(written)
    rounds = [r for part in results[1:] for r in part]
    assert rounds
    assert len(rounds) > 3, "the exports did not overlap the writes"
    for fmt, before, ids in rounds:
        assert ids <= everything
        if fmt == "csv":  # FOCUS has no row for an event that used and cost nothing
            assert before <= ids  # every event written is in the range
    status, body = await get(api, EXPORT, **RANGE)
    assert status == 200
    assert _check_rows(read_csv(body.encode())[1]) >= {i for i in everything if i.startswith("live-")}


async def test_an_export_of_a_range_without_events_is_its_header(api: Api, engine: AsyncEngine) -> None:
    await seed(api, engine)
    for params in (
        {},
        {"format": "focus"},
        {"group_by": "team,model"},
        {"group_by": "key", "granularity": "hour"},
    ):
        status, body = await get(api, EXPORT, start_date="2020-01-01", end_date="2020-01-31", **params)
        assert status == 200, (params, body)
        header, rows = read_csv(body.encode())
        assert header and rows == [], params


async def test_an_export_over_ten_thousand_years_streams(engine: AsyncEngine) -> None:
    """1,500 events over 0001-01-01 … 9999-12-30: 200, written in several body chunks (the
    response is streamed, not buffered), every event once; 9999-12-31 (whose end is outside
    the calendar) is a 422 naming end_date."""
    repo = LedgerRepository(engine)
    base = datetime(2026, 11, 18, tzinfo=UTC)
    await repo.write_batch([_event(i, base + timedelta(seconds=i), "kid") for i in range(1500)])
    app = build_admin_app(engine, MASTER)

    async def call(query: dict[str, str]) -> tuple[int, list[bytes]]:
        finished = asyncio.Event()
        messages: list[MutableMapping[str, Any]] = []
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": EXPORT,
            "raw_path": EXPORT.encode(),
            "query_string": urlencode(query).encode(),
            "root_path": "",
            "headers": [(b"host", b"admin"), (b"authorization", f"Bearer {MASTER}".encode())],
            "client": ("127.0.0.1", 1),
            "server": ("admin", 80),
        }
        await app(scope, receive, send)
        finished.set()
        start = next(m for m in messages if m["type"] == "http.response.start")
        return start["status"], [m.get("body", b"") for m in messages if m["type"] == "http.response.body"]

    status, chunks = await call({"start_date": "0001-01-01", "end_date": "9999-12-30"})
    assert status == 200
    assert len([c for c in chunks if c]) >= 3, "the export was sent in one piece"
    rows = read_csv(b"".join(chunks))[1]
    assert len(_check_rows(rows)) == 1500
    status, chunks = await call({"start_date": "0001-01-01", "end_date": "9999-12-31"})
    body = json.loads(b"".join(chunks))
    error_of(status, body, 422, "end_date")


async def test_formula_like_text_is_exported_as_text(api: Api, engine: AsyncEngine) -> None:
    """What a spreadsheet would see: the per-event CSV holds tags as a JSON array (the cell
    starts with ``[``, not a formula); a grouped-by-tag export and attribution columns
    (``end_user``) that start like a formula get a leading quote, so they are shown, never
    run (docs/exports.md)."""
    formula = "=cmd|' /C calc'!A0"
    event = SpendEvent(
        event_id="formula-1",
        occurred_at=datetime(2026, 11, 18, 12, tzinfo=UTC),
        cost_nanos=1_234,
        cost_items={"input": 1_234},
        usage=Usage(input_tokens=3),
        api_key="kid",
        end_user="+SUM(1+1)",
        tags=(formula, "@x"),
        model="gpt-4o-mini",
        provider="openai",
    )
    await LedgerRepository(engine).write_batch([event])
    status, body = await get(api, EXPORT, **RANGE)
    assert status == 200
    (row,) = read_csv(body.encode())[1]
    assert json.loads(row["request_tags"]) == [formula, "@x"]
    assert row["request_tags"].startswith("[")
    assert row["end_user"] == "'+SUM(1+1)"
    status, body = await get(api, EXPORT, **RANGE, group_by="tag")
    assert status == 200
    assert {r["tag"] for r in read_csv(body.encode())[1]} == {"'" + formula, "'@x"}

"""LiteLLM's spend endpoints over HTTP, on SQLite and PostgreSQL, against a ledger filled
with known events: every figure equals the sums computed here from the same events, to
the nano-USD, in UTC, Europe/Berlin and Asia/Kolkata; response field names are LiteLLM's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from admin_helpers import Api
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage import Usage
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.repository import LedgerRepository

ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")
FIRST, LAST = "2025-03-10", "2025-03-12"

# LiteLLM's response field names, per endpoint (spend_management_endpoints.py, schema.prisma).
SPEND_LOG_FIELDS = {
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "model", "model_group", "api_base", "user", "metadata", "cache_hit",
    "request_tags", "team_id", "end_user", "status",
}  # fmt: skip
SPENDGATE_LOG_FIELDS = {"cost_items", "catalogue_version"}
SUMMARY_FIELDS = {"startTime", "spend", "users", "models"}
# spendgate adds its response cache's savings (docs/spend-api.md) to LiteLLM's fields.
GLOBAL_SPEND_FIELDS = {"spend", "max_budget", "saved_cache_cost"}
GLOBAL_LOGS_FIELDS = {"date", "spend"}
GLOBAL_KEYS_FIELDS = {"api_key", "total_spend", "key_alias", "key_name"}
GLOBAL_MODELS_FIELDS = {"model", "total_spend"}
GLOBAL_TEAMS_FIELDS = {"daily_spend", "teams", "total_spend_per_team"}
TEAM_TOTAL_FIELDS = {"team_id", "total_spend"}
SPEND_TAGS_FIELDS = {"individual_request_tag", "log_count", "total_spend"}
GLOBAL_TAGS_ROW_FIELDS = {"name", "spend", "log_count"}
REPORT_DAY_FIELDS = {"group_by_day"}
REPORT_TEAM_FIELDS = {"team_name", "total_spend", "metadata", "total_saved_cache_cost"}
REPORT_CUSTOMER_FIELDS = {"customer", "total_spend", "metadata", "total_saved_cache_cost"}
REPORT_META_FIELDS = {"model", "spend", "total_tokens", "cache_hits", "saved_cache_cost"}
REPORT_KEY_FIELDS = {"api_key", "total_cost", "total_input_tokens", "total_output_tokens", "model_details"}
REPORT_KEY_FIELDS |= {"total_saved_cache_cost"}
REPORT_KEY_MODEL_FIELDS = {"model", "total_cost", "total_input_tokens", "total_output_tokens"}


def nanos(usd: Any) -> int:
    exact = Decimal(usd) * 1_000_000_000
    assert exact == exact.to_integral_value(), usd
    return int(exact)


@dataclass
class World:
    events: list[SpendEvent]
    hashes: dict[str, str]  # key_id -> token
    raw: dict[str, str]  # name -> raw key


def _event(n: int, at: datetime, key: str, **kw: Any) -> SpendEvent:
    defaults: dict[str, Any] = {
        "event_id": f"req-{n:03d}",
        "occurred_at": at,
        "cost_nanos": 1_000_000 * (n + 1) + 7 * n,
        "usage": Usage(input_tokens=100 + n, output_tokens=10 + n),
        "cost_items": {"input": 600_000 * (n + 1), "output": 400_000 * (n + 1) + 7 * n},
        "api_key": key,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "requested_model": "mini",
        "catalogue_version": "cat-1",
        "endpoint": "/v1/chat/completions",
    }
    defaults.update(kw)
    return SpendEvent(**defaults)


async def _world(api: Api, engine: AsyncEngine) -> World:
    await api.ok("POST", "/team/new", {"team_id": "t1", "team_alias": "Alpha"})
    await api.ok("POST", "/team/new", {"team_id": "t2"})
    raw = {}
    for user in ("u1", "u2"):
        raw[user] = (await api.ok("POST", "/user/new", {"user_id": user, "user_role": "internal_user"}))[
            "key"
        ]
    a = await api.ok("POST", "/key/generate", {"user_id": "u1", "team_id": "t1", "key_alias": "ka"})
    b = await api.ok("POST", "/key/generate", {"user_id": "u2", "team_id": "t2", "key_alias": "kb"})
    raw["a"], raw["b"] = a["key"], b["key"]
    hashes = {a["key_id"]: a["token"], b["key_id"]: b["token"]}
    ka, kb, gone = a["key_id"], b["key_id"], "deleted-key-id"
    t = datetime
    spec: list[tuple[datetime, str, dict[str, Any]]] = [
        (t(2025, 3, 9, 18, 45, tzinfo=UTC), ka, {}),  # Kolkata: 10th 00:15
        (t(2025, 3, 9, 23, 30, tzinfo=UTC), kb, {}),  # Berlin/Kolkata: the 10th
        (t(2025, 3, 10, 0, 10, tzinfo=UTC), ka, {"model": "gpt-4o", "tags": ("prod", "eu")}),
        (t(2025, 3, 10, 12, 0, tzinfo=UTC), kb, {"end_user": "cust-1", "tags": ("prod",)}),
        (t(2025, 3, 10, 22, 50, tzinfo=UTC), ka, {"end_user": "cust-1", "status": EventStatus.ERROR}),
        (t(2025, 3, 11, 9, 0, tzinfo=UTC), gone, {"team_id": None, "user_id": None}),
        (t(2025, 3, 11, 18, 29, tzinfo=UTC), kb, {"model": "claude-3-5-haiku", "provider": "anthropic"}),
        (t(2025, 3, 12, 18, 31, tzinfo=UTC), ka, {"tags": ("eu",)}),  # Kolkata: the 13th
        (t(2025, 3, 12, 23, 5, tzinfo=UTC), kb, {"end_user": "cust-2"}),  # Berlin: the 13th
        (t(2025, 3, 13, 3, 0, tzinfo=UTC), ka, {}),  # outside everywhere
    ]
    owner: dict[str, tuple[str | None, str | None]] = {ka: ("u1", "t1"), kb: ("u2", "t2"), gone: (None, None)}
    events = []
    for n, (at, key, kw) in enumerate(spec):
        who, team = owner[key]
        kw = {"user_id": who, "team_id": team, **kw}
        events.append(_event(n, at, key, started_at=at.replace(second=1) if n % 2 else None, **kw))
    await LedgerRepository(engine).write_batch(events)
    return World(events, hashes, raw)


def _in(zone: str) -> Callable[[SpendEvent], date | None]:
    z = ZoneInfo(zone)

    def day(e: SpendEvent) -> date | None:
        d = e.occurred_at.astimezone(z).date()
        return d if date.fromisoformat(FIRST) <= d <= date.fromisoformat(LAST) else None

    return day


def _sum(events: list[SpendEvent], key: Callable[[SpendEvent], Any], zone: str) -> dict[Any, int]:
    day = _in(zone)
    out: dict[Any, int] = defaultdict(int)
    for e in events:
        if day(e) is not None:
            for k in key(e) if isinstance(key(e), list) else [key(e)]:
                out[k] += e.cost_nanos
    return dict(out)


def _range(zone: str, **kw: Any) -> dict[str, Any]:
    return {"start_date": FIRST, "end_date": LAST, "timezone": zone, **kw}


@pytest.mark.parametrize("zone", ZONES)
async def test_global_aggregates_equal_the_ledger(api: Api, engine: AsyncEngine, zone: str) -> None:
    w = await _world(api, engine)
    ev = w.events
    day = _in(zone)
    token = lambda kid: w.hashes.get(kid, kid)  # noqa: E731

    total = await api.ok("GET", "/global/spend", params=_range(zone))
    assert set(total) == GLOBAL_SPEND_FIELDS
    assert nanos(total["spend"]) == sum(_sum(ev, lambda e: 0, zone).values())

    per_day = _sum(ev, lambda e: day(e), zone)
    logs = await api.ok("GET", "/global/spend/logs", params=_range(zone))
    assert all(set(r) == GLOBAL_LOGS_FIELDS for r in logs)
    assert {date.fromisoformat(r["date"]): nanos(r["spend"]) for r in logs} == per_day

    ka = next(iter(w.hashes))
    logs = await api.ok("GET", "/global/spend/logs", params=_range(zone, api_key=w.raw["a"]))
    assert {r["api_key"] for r in logs} == {w.hashes[ka]}
    want = _sum([e for e in ev if e.api_key == ka], lambda e: day(e), zone)
    assert {date.fromisoformat(r["date"]): nanos(r["spend"]) for r in logs} == want

    keys = await api.ok("GET", "/global/spend/keys", params=_range(zone))
    assert all(set(r) == GLOBAL_KEYS_FIELDS for r in keys)
    by_key = _sum(ev, lambda e: token(e.api_key), zone)
    assert {r["api_key"]: nanos(r["total_spend"]) for r in keys} == by_key
    assert [nanos(r["total_spend"]) for r in keys] == sorted(by_key.values(), reverse=True)
    assert {r["api_key"]: r["key_alias"] for r in keys}[w.hashes[ka]] == "ka"
    assert len(await api.ok("GET", "/global/spend/keys", params=_range(zone, limit=1))) == 1

    models = await api.ok("GET", "/global/spend/models", params=_range(zone))
    assert all(GLOBAL_MODELS_FIELDS <= set(r) for r in models)
    assert {r["model"]: nanos(r["total_spend"]) for r in models} == _sum(ev, lambda e: e.model, zone)

    teams = await api.ok("GET", "/global/spend/teams", params=_range(zone))
    assert set(teams) == GLOBAL_TEAMS_FIELDS
    names = {"t1": "Alpha", "t2": "t2", None: "Unassigned"}
    want_team = _sum(ev, lambda e: names[e.team_id], zone)
    assert all(set(r) == TEAM_TOTAL_FIELDS for r in teams["total_spend_per_team"])
    assert {r["team_id"]: nanos(r["total_spend"]) for r in teams["total_spend_per_team"]} == want_team
    assert sorted(teams["teams"]) == sorted(want_team)
    daily = {
        (date.fromisoformat(r["date"]), name): nanos(v)
        for r in teams["daily_spend"]
        for name, v in r.items()
        if name != "date"
    }
    assert daily == _sum(ev, lambda e: (day(e), names[e.team_id]), zone)


@pytest.mark.parametrize("zone", ZONES)
async def test_tags_and_report_equal_the_ledger(api: Api, engine: AsyncEngine, zone: str) -> None:
    w = await _world(api, engine)
    ev = w.events
    day = _in(zone)
    tags = _sum(ev, lambda e: list(e.tags), zone)
    counts: dict[str, int] = defaultdict(int)
    for e in ev:
        if day(e) is not None:
            for tag in e.tags:
                counts[tag] += 1

    rows = await api.ok("GET", "/spend/tags", params=_range(zone))
    assert all(set(r) == SPEND_TAGS_FIELDS for r in rows)
    assert {r["individual_request_tag"]: nanos(r["total_spend"]) for r in rows} == tags
    assert {r["individual_request_tag"]: r["log_count"] for r in rows} == counts
    got = await api.ok("GET", "/global/spend/tags", params=_range(zone, tags="eu"))
    assert all(set(r) == GLOBAL_TAGS_ROW_FIELDS for r in got["spend_per_tag"])
    assert {r["name"]: nanos(r["spend"]) for r in got["spend_per_tag"]} == {"eu": tags["eu"]}

    names = {"t1": "Alpha", "t2": "t2", None: "Unassigned Team"}
    report = await api.ok("GET", "/global/spend/report", params=_range(zone))
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in report:
        assert set(r) == REPORT_DAY_FIELDS | {"teams"}
        start = datetime.fromisoformat(r["group_by_day"])
        assert start.utcoffset() == start.astimezone(ZoneInfo(zone)).utcoffset() and start.hour == 0
        for team in r["teams"]:
            assert set(team) == REPORT_TEAM_FIELDS
            assert nanos(team["total_spend"]) == sum(nanos(m["spend"]) for m in team["metadata"])
            for m in team["metadata"]:
                assert set(m) == REPORT_META_FIELDS
                seen[(start.date(), team["team_name"], m["model"])] += nanos(m["spend"])
    assert dict(seen) == _sum(ev, lambda e: (day(e), names[e.team_id], e.model), zone)

    report = await api.ok("GET", "/global/spend/report", params=_range(zone, group_by="customer"))
    seen = defaultdict(int)
    for r in report:
        for c in r["customers"]:
            assert set(c) == REPORT_CUSTOMER_FIELDS
            seen[(datetime.fromisoformat(r["group_by_day"]).date(), c["customer"])] += nanos(c["total_spend"])
    assert dict(seen) == _sum(ev, lambda e: (day(e), e.end_user), zone)

    report = await api.ok("GET", "/global/spend/report", params=_range(zone, group_by="api_key"))
    seen = defaultdict(int)
    for r in report:
        assert set(r) == REPORT_KEY_FIELDS
        assert nanos(r["total_cost"]) == sum(nanos(m["total_cost"]) for m in r["model_details"])
        for m in r["model_details"]:
            assert set(m) == REPORT_KEY_MODEL_FIELDS
            seen[(r["api_key"], m["model"])] += nanos(m["total_cost"])
    assert dict(seen) == _sum(ev, lambda e: (w.hashes.get(e.api_key or "", e.api_key), e.model), zone)
    ka = next(iter(w.hashes))
    only = await api.ok("GET", "/global/spend/report", params=_range(zone, api_key=w.hashes[ka]))
    assert [r["api_key"] for r in only] == [w.hashes[ka]]
    assert nanos(only[0]["total_cost"]) == sum(
        _sum([e for e in ev if e.api_key == ka], lambda e: 0, zone).values()
    )
    tokens = sum(e.usage.input_tokens for e in ev if e.api_key == ka and day(e) is not None)
    assert only[0]["total_input_tokens"] == tokens
    by_user = await api.ok("GET", "/global/spend/report", params=_range(zone, internal_user_id="u1"))
    assert by_user == only


@pytest.mark.parametrize("zone", ZONES)
async def test_spend_logs_rows_pages_and_summary(api: Api, engine: AsyncEngine, zone: str) -> None:
    w = await _world(api, engine)
    ev = w.events
    day = _in(zone)
    inside = sorted((e for e in ev if day(e) is not None), key=lambda e: e.occurred_at, reverse=True)
    rows: list[dict[str, Any]] = []
    for page in range(1, 10):
        got = await api.ok(
            "GET", "/spend/logs", params=_range(zone, summarize="false", page=page, page_size=3)
        )
        assert len(got) <= 3
        rows += got
        if len(got) < 3:
            break
    assert [r["request_id"] for r in rows] == [e.event_id for e in inside]
    by_id = {e.event_id: e for e in ev}
    for r in rows:
        assert set(r) >= SPEND_LOG_FIELDS | SPENDGATE_LOG_FIELDS
        e = by_id[r["request_id"]]
        assert nanos(r["spend"]) == e.cost_nanos
        assert {k: nanos(v) for k, v in r["cost_items"].items()} == e.cost_items
        assert r["api_key"] == w.hashes.get(e.api_key or "", e.api_key)
        assert (r["prompt_tokens"], r["completion_tokens"]) == (e.usage.input_tokens, e.usage.output_tokens)
        assert r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"]
        assert datetime.fromisoformat(r["endTime"]) == e.occurred_at
        assert datetime.fromisoformat(r["startTime"]) == (e.started_at or e.occurred_at)
        assert r["status"] == ("success" if e.status == EventStatus.SUCCESS else "failure")
        assert r["request_tags"] == list(e.tags) and r["team_id"] == e.team_id
        assert (r["model"], r["model_group"], r["call_type"]) == (e.model, "mini", "acompletion")
        assert r["catalogue_version"] == "cat-1" and r["user"] == (e.user_id or "")
    assert len(await api.ok("GET", "/spend/logs", params={"page_size": 1000})) == len(ev)
    one = await api.ok("GET", "/spend/logs", params={"request_id": "req-003"})
    assert [r["request_id"] for r in one] == ["req-003"]
    mine = await api.ok("GET", "/spend/logs", params={"api_key": w.raw["a"]})
    ka = next(iter(w.hashes))
    assert {r["request_id"] for r in mine} == {e.event_id for e in ev if e.api_key == ka}

    summary = await api.ok("GET", "/spend/logs", params=_range(zone))
    days = {date.fromisoformat(r["startTime"]): r for r in summary}
    assert all(SUMMARY_FIELDS <= set(r) for r in summary)
    assert {d: nanos(r["spend"]) for d, r in days.items() if nanos(r["spend"])} == _sum(ev, day, zone)
    assert max(days) == date.fromisoformat(LAST)
    users = {(d, u): nanos(v) for d, r in days.items() for u, v in r["users"].items()}
    assert users == _sum(ev, lambda e: (day(e), str(e.user_id)), zone)
    models = {(d, m): nanos(v) for d, r in days.items() for m, v in r["models"].items()}
    assert models == _sum(ev, lambda e: (day(e), e.model), zone)
    keyed = {(d, k): nanos(v) for d, r in days.items() for k, v in r.items() if k not in SUMMARY_FIELDS}
    assert keyed == _sum(ev, lambda e: (day(e), w.hashes.get(e.api_key or "", e.api_key)), zone)


async def test_entity_spend_and_narrowing(api: Api, engine: AsyncEngine) -> None:
    w = await _world(api, engine)
    ev = w.events
    ka, kb = list(w.hashes)
    life: dict[str | None, int] = defaultdict(int)
    for e in ev:
        life[e.api_key] += e.cost_nanos
    keys = await api.ok("GET", "/spend/keys")
    got = {r["token"]: nanos(r["total_spend"]) for r in keys}
    assert got[w.hashes[ka]] == life[ka] and got[w.hashes[kb]] == life[kb]
    users = await api.ok("GET", "/spend/users", params={"user_id": "u1"})
    assert [u["user_id"] for u in users] == ["u1"]
    assert nanos(users[0]["total_spend"]) == sum(e.cost_nanos for e in ev if e.user_id == "u1")

    # internal user u1 (owns key a): narrowed to their keys, 403 for another's
    u1 = w.raw["u1"]
    total = await api.ok("GET", "/global/spend", params=_range("UTC"), key=u1)
    assert nanos(total["spend"]) == sum(_sum([e for e in ev if e.api_key == ka], lambda e: 0, "UTC").values())
    assert {r["token"] for r in await api.ok("GET", "/spend/keys", key=u1)} == {
        w.hashes[ka],
        *(r["token"] for r in keys if r["user_id"] == "u1" and r["token"] != w.hashes[ka]),
    }
    logs = await api.ok("GET", "/spend/logs", params={"page_size": 1000}, key=u1)
    assert {r["request_id"] for r in logs} == {e.event_id for e in ev if e.api_key == ka}
    status, err = await api.get("/spend/logs", params={"api_key": w.raw["b"]}, key=u1)
    assert status == 403 and err["error"]["param"] == "api_key"
    status, err = await api.get("/spend/users", params={"user_id": "u2"}, key=u1)
    assert status == 403
    status, _ = await api.get("/global/spend/report", params=_range("UTC", team_id="t2"), key=u1)
    assert status == 403
    status, _ = await api.get("/spend/tags", key=u1)
    assert status == 403
    # a plain key reads only itself
    own = await api.ok("GET", "/global/spend/keys", params=_range("UTC"), key=w.raw["b"])
    assert [r["api_key"] for r in own] == [w.hashes[kb]]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start_date": "2025-13-01", "end_date": "2025-03-12"}, "start_date"),
        ({"start_date": "2025-03-01", "end_date": "yesterday"}, "end_date"),
        ({"start_date": "2025-03-12", "end_date": "2025-03-01"}, "end_date"),
        ({"start_date": "2025-03-01", "end_date": "2025-03-12", "timezone": "Mars/Olympus"}, "timezone"),
        ({"start_date": "2025-03-01"}, "end_date"),
    ],
)
async def test_bad_dates_and_zones_are_422_naming_the_parameter(
    sqlite_api: Api, params: dict[str, str], param: str
) -> None:
    for path in ("/global/spend/report", "/spend/logs", "/global/spend"):
        if path == "/global/spend" and "end_date" not in params:
            continue
        status, err = await sqlite_api.get(path, params=params)
        assert status == 422, (path, err)
        assert err["error"]["param"] == param

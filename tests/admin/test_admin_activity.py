"""LiteLLM's daily activity endpoints over HTTP, on SQLite and PostgreSQL.

A ledger is filled with known events (several users, teams, keys, tags, customers, models,
providers and statuses, across a Europe/Berlin DST switch and local midnights); every
figure each endpoint answers is compared, to the nano-USD, with sums computed here from the
same event list, per local day in UTC, Europe/Berlin and Asia/Kolkata.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from admin_helpers import Api
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.money import from_nano
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.repository import LedgerRepository

ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")
START, END = "2026-03-26", "2026-04-02"

# LiteLLM's SpendAnalyticsPaginatedResponse
# (litellm/types/proxy/management_endpoints/common_daily_activity.py).
LITELLM_TOP = {"results", "metadata"}
LITELLM_DAY = {"date", "metrics", "breakdown"}
LITELLM_METRICS = {
    "spend",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "total_tokens",
    "successful_requests",
    "failed_requests",
    "api_requests",
}
SPENDGATE_METRICS = {"cache_hits", "saved_cache_cost"}
"""spendgate's own: the response cache's hits and what they saved (LiteLLM has savings fields too)."""
LITELLM_BREAKDOWN = {"models", "providers", "api_keys", "entities"}
LITELLM_KEY_METADATA = {"key_alias", "team_id"}
LITELLM_METADATA = {
    "total_spend",
    "total_prompt_tokens",
    "total_completion_tokens",
    "total_tokens",
    "total_api_requests",
    "total_successful_requests",
    "total_failed_requests",
    "total_cache_read_input_tokens",
    "total_cache_creation_input_tokens",
    "page",
    "total_pages",
    "has_more",
}
SPENDGATE_METADATA = {"total_cache_hits", "total_saved_cache_cost"}


class World:
    """The entities (created through the API) and the events billed to them."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        """name → the /key/generate answer (``key``, ``token``, ``key_id``, owners)."""
        self.events: list[SpendEvent] = []


async def _seed(api: Api, engine: AsyncEngine) -> World:
    world = World()
    for user in ("alice", "bob"):
        await api.ok("POST", "/user/new", {"user_id": user, "user_email": f"{user}@example.com"})
    await api.ok("POST", "/team/new", {"team_id": "t1", "team_alias": "Team One"})
    await api.ok("POST", "/team/new", {"team_id": "t2"})
    for customer in ("c1", "c2"):
        await api.ok("POST", "/customer/new", {"user_id": customer, "alias": customer.upper()})
    specs: dict[str, dict[str, Any]] = {
        "ka1": {"user_id": "alice", "team_id": "t1", "tags": ["blue"]},
        "ka2": {"user_id": "alice"},
        "kb": {"user_id": "bob", "team_id": "t2", "end_user_id": "c1"},
        "ks": {"tags": ["red"]},
        "kd": {"user_id": "bob", "team_id": "t2"},
    }
    for name, spec in specs.items():
        world.keys[name] = {**spec, **await api.ok("POST", "/key/generate", {"key_alias": name, **spec})}

    rng = random.Random(13)
    t0 = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
    models = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic"), ("gpt-4o", "azure")]
    statuses = [EventStatus.SUCCESS] * 6 + [EventStatus.ERROR, EventStatus.PARTIAL]
    for n in range(400):
        name = rng.choice(list(specs))
        spec = specs[name]
        model, provider = rng.choice(models)
        inputs = rng.randint(1, 5000)
        tags = tuple(spec.get("tags", ())) + (("red",) if rng.random() < 0.3 else ())
        end_user = spec.get("end_user_id") or rng.choice([None, "c1", "c2"])
        hit = n % 5 == 0  # a response-cache hit: no cost, what it saved recorded
        cost = rng.randint(0, 3_000_000_000)
        world.events.append(
            SpendEvent(
                event_id=f"act-{n}",
                # ~9 days, minute precision: many events sit near local midnights
                occurred_at=t0 + timedelta(minutes=rng.randint(0, 9 * 24 * 60)),
                cost_nanos=0 if hit else cost,
                cache_hit=hit,
                saved_nanos=cost if hit else 0,
                usage=Usage(
                    input_tokens=inputs,
                    output_tokens=rng.randint(0, 900),
                    cache_read_tokens=rng.randint(0, inputs // 2),
                    cache_write_tokens=rng.randint(0, inputs // 4),
                ),
                status=rng.choice(statuses),
                api_key=world.keys[name]["key_id"],
                user_id=spec.get("user_id"),
                team_id=spec.get("team_id"),
                end_user=end_user,
                tags=tuple(dict.fromkeys(tags)),
                model=model,
                provider=provider,
                catalogue_version="test",
            )
        )
    await LedgerRepository(engine).write_batch(world.events)
    await api.ok("POST", "/key/delete", {"keys": [world.keys["kd"]["key"]]})
    return world


@pytest.fixture
async def world(api: Api, engine: AsyncEngine) -> World:
    return await _seed(api, engine)


def _local_day(e: SpendEvent, zone: str) -> date:
    return e.occurred_at.astimezone(ZoneInfo(zone)).date()


def _in_range(events: Iterable[SpendEvent], zone: str) -> list[SpendEvent]:
    first, last = date.fromisoformat(START), date.fromisoformat(END)
    return [e for e in events if first <= _local_day(e, zone) <= last]


def _metrics(events: Iterable[SpendEvent]) -> dict[str, Any]:
    es = list(events)
    prompt = sum(e.usage.input_tokens for e in es)
    completion = sum(e.usage.output_tokens for e in es)
    return {
        "spend": from_nano(sum(e.cost_nanos for e in es)),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cache_read_input_tokens": sum(e.usage.cache_read_tokens for e in es),
        "cache_creation_input_tokens": sum(e.usage.cache_write_tokens for e in es),
        "total_tokens": prompt + completion,
        "successful_requests": sum(e.status is EventStatus.SUCCESS for e in es),
        "failed_requests": sum(e.status is EventStatus.ERROR for e in es),
        "api_requests": len(es),
        "cache_hits": sum(e.cache_hit for e in es),
        "saved_cache_cost": from_nano(sum(e.saved_nanos for e in es)),
    }


def _got(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        **metrics,
        "spend": Decimal(metrics["spend"]),
        "saved_cache_cost": Decimal(metrics["saved_cache_cost"]),
    }


def _by(
    events: Iterable[SpendEvent], label: Callable[[SpendEvent], Iterable[str]]
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[SpendEvent]] = defaultdict(list)
    for e in events:
        for name in label(e):
            groups[name].append(e)
    return {name: _metrics(es) for name, es in groups.items()}


def _check(
    body: dict[str, Any],
    events: list[SpendEvent],
    zone: str,
    *,
    entity: Callable[[SpendEvent], Iterable[str]],
    keys: dict[str, str],
    day_events: Callable[[list[SpendEvent]], list[SpendEvent]] | None = None,
) -> None:
    """Every figure of ``body`` equals the sums over ``events`` (already filtered), per local day.

    ``entity`` names the entities an event counts under; ``keys`` maps the key_ids listed
    in the per-key breakdown to their names in the answer. ``day_events`` gives the events
    the day's own metrics count (default: all), for tags where an event counts per tag.
    """
    by_day: dict[date, list[SpendEvent]] = defaultdict(list)
    for e in events:
        by_day[_local_day(e, zone)].append(e)
    assert [r["date"] for r in body["results"]] == [d.isoformat() for d in sorted(by_day, reverse=True)]
    for result in body["results"]:
        es = by_day[date.fromisoformat(result["date"])]
        counted = day_events(es) if day_events else es
        assert _got(result["metrics"]) == _metrics(counted)
        bd = result["breakdown"]
        assert {m: _got(v["metrics"]) for m, v in bd["models"].items()} == _by(
            counted, lambda e: [e.model or ""]
        )
        assert {p: _got(v["metrics"]) for p, v in bd["providers"].items()} == _by(
            counted, lambda e: [e.provider or ""]
        )
        assert {n: _got(v["metrics"]) for n, v in bd["entities"].items()} == _by(es, entity)
        listed = [e for e in counted if e.api_key in keys]
        want_keys = _by({e.event_id: e for e in listed}.values(), lambda e: [keys[e.api_key or ""]])
        assert {k: _got(v["metrics"]) for k, v in bd["api_keys"].items()} == want_keys
    counted_all = [
        e for r in body["results"] for e in (day_events or list)(by_day[date.fromisoformat(r["date"])])
    ]
    total = _metrics(counted_all)
    meta = body["metadata"]
    assert Decimal(meta["total_spend"]) == total.pop("spend")
    assert {k: meta[f"total_{k}"] for k in total if k != "total_tokens"} == {
        k: v for k, v in total.items() if k != "total_tokens"
    }
    assert meta["total_tokens"] == total["total_tokens"]


def _key_names(world: World, *names: str) -> dict[str, str]:
    """key_id → the name the answer lists it by: the hash, or the id of a deleted key."""
    out = {}
    for name in names:
        k = world.keys[name]
        out[k["key_id"]] = k["key_id"] if name == "kd" else k["token"]
    return out


async def _activity(api: Api, path: str, zone: str, **params: Any) -> dict[str, Any]:
    query = {"start_date": START, "end_date": END, "timezone": zone, "page_size": 1000, **params}
    body: dict[str, Any] = await api.ok("GET", path, params=query)
    return body


@pytest.mark.parametrize("zone", ZONES)
async def test_team_activity_all_teams(api: Api, world: World, zone: str) -> None:
    body = await _activity(api, "/team/daily/activity", zone)
    events = _in_range(world.events, zone)
    assert events and body["results"]
    _check(
        body,
        events,
        zone,
        entity=lambda e: [e.team_id or "Unassigned"],
        keys=_key_names(world, "ka1", "ka2", "kb", "ks", "kd"),
    )
    day = body["results"][0]
    assert set(body) == LITELLM_TOP and set(day) == LITELLM_DAY
    assert set(day["metrics"]) == LITELLM_METRICS | SPENDGATE_METRICS
    assert set(day["breakdown"]) == LITELLM_BREAKDOWN
    assert set(body["metadata"]) == LITELLM_METADATA | SPENDGATE_METADATA
    for entry in day["breakdown"]["api_keys"].values():
        assert LITELLM_KEY_METADATA <= set(entry["metadata"])
        assert set(entry["metrics"]) == LITELLM_METRICS | SPENDGATE_METRICS
    ka1 = day["breakdown"]["api_keys"].get(world.keys["ka1"]["token"])
    if ka1 is not None:
        assert ka1["metadata"]["key_alias"] == "ka1" and ka1["metadata"]["team_id"] == "t1"
    if "t1" in day["breakdown"]["entities"]:
        assert day["breakdown"]["entities"]["t1"]["metadata"] == {"team_alias": "Team One"}


@pytest.mark.parametrize("zone", ZONES)
async def test_team_activity_filtered(api: Api, world: World, zone: str) -> None:
    body = await _activity(api, "/team/daily/activity", zone, team_ids="t1")
    events = [e for e in _in_range(world.events, zone) if e.team_id == "t1"]
    _check(body, events, zone, entity=lambda e: [e.team_id or ""], keys=_key_names(world, "ka1"))

    # the deleted key kd no longer belongs to t2: its spend counts, it is not listed
    body = await _activity(api, "/team/daily/activity", zone, team_ids="t2,t1", exclude_team_ids="t1")
    events = [e for e in _in_range(world.events, zone) if e.team_id == "t2"]
    _check(body, events, zone, entity=lambda e: [e.team_id or ""], keys=_key_names(world, "kb"))

    body = await _activity(api, "/team/daily/activity", zone, exclude_team_ids="t1")
    events = [e for e in _in_range(world.events, zone) if e.team_id != "t1"]
    _check(
        body,
        events,
        zone,
        entity=lambda e: [e.team_id or "Unassigned"],
        keys=_key_names(world, "ka2", "kb", "ks", "kd"),
    )


@pytest.mark.parametrize("zone", ZONES)
async def test_user_activity(api: Api, world: World, zone: str) -> None:
    body = await _activity(api, "/user/daily/activity", zone, user_id="alice")
    events = [e for e in _in_range(world.events, zone) if e.user_id == "alice"]
    _check(body, events, zone, entity=lambda e: ["alice"], keys=_key_names(world, "ka1", "ka2"))
    assert (
        body["results"][0]["breakdown"]["entities"]["alice"]["metadata"]["user_email"] == "alice@example.com"
    )

    body = await _activity(api, "/user/daily/activity", zone, user_id="alice", model="gpt-4o")
    events = [e for e in events if e.model == "gpt-4o"]
    _check(body, events, zone, entity=lambda e: ["alice"], keys=_key_names(world, "ka1", "ka2"))


@pytest.mark.parametrize("zone", ZONES)
async def test_tag_activity(api: Api, world: World, zone: str) -> None:
    body = await _activity(api, "/tag/daily/activity", zone, tags="blue,red")
    events = [e for e in _in_range(world.events, zone) if {"blue", "red"} & set(e.tags)]
    assert any(set(e.tags) == {"blue", "red"} for e in events)

    def per_tag(es: list[SpendEvent]) -> list[SpendEvent]:  # an event counts once per selected tag
        return [e for e in es for t in e.tags if t in {"blue", "red"}]

    _check(
        body,
        events,
        zone,
        entity=lambda e: [t for t in e.tags if t in {"blue", "red"}],
        keys=_key_names(world, "ka1", "ks"),
        day_events=per_tag,
    )


@pytest.mark.parametrize("zone", ZONES)
async def test_customer_activity(api: Api, world: World, zone: str) -> None:
    body = await _activity(api, "/customer/daily/activity", zone, end_user_ids="c1")
    events = [e for e in _in_range(world.events, zone) if e.end_user == "c1"]
    assert any(e.api_key != world.keys["kb"]["key_id"] for e in events)
    # Only kb is bound to c1: the per-key breakdown lists kb; c1's spend through other keys
    # counts in the day's figures.
    _check(body, events, zone, entity=lambda e: ["c1"], keys=_key_names(world, "kb"))
    assert body["results"][0]["breakdown"]["entities"]["c1"]["metadata"] == {"alias": "C1"}


@pytest.mark.parametrize("zone", ZONES)
async def test_api_key_filter(api: Api, world: World, zone: str) -> None:
    ka1 = world.keys["ka1"]
    for ref in (ka1["key"], ka1["token"], ka1["key_id"]):
        body = await _activity(api, "/team/daily/activity", zone, api_key=ref)
        events = [e for e in _in_range(world.events, zone) if e.api_key == ka1["key_id"]]
        _check(body, events, zone, entity=lambda e: ["t1"], keys=_key_names(world, "ka1"))
    # a key that belongs to none of the selected entities: nothing
    body = await _activity(api, "/team/daily/activity", zone, api_key=ka1["key"], team_ids="t2")
    assert body["results"] == [] and body["metadata"]["total_pages"] == 0


async def test_pagination_by_days(api: Api, world: World) -> None:
    whole = await _activity(api, "/team/daily/activity", "Europe/Berlin")
    days = [r["date"] for r in whole["results"]]
    assert len(days) == 8
    seen: list[str] = []
    spend = Decimal(0)
    for page in (1, 2, 3):
        body = await _activity(api, "/team/daily/activity", "Europe/Berlin", page=page, page_size=3)
        meta = body["metadata"]
        assert (meta["page"], meta["total_pages"], meta["has_more"]) == (page, 3, page < 3)
        assert Decimal(meta["total_spend"]) == sum(Decimal(r["metrics"]["spend"]) for r in body["results"])
        seen += [r["date"] for r in body["results"]]
        spend += Decimal(meta["total_spend"])
    assert seen == days
    assert spend == Decimal(whole["metadata"]["total_spend"])
    beyond = await _activity(api, "/team/daily/activity", "Europe/Berlin", page=4, page_size=3)
    assert beyond["results"] == [] and beyond["metadata"]["has_more"] is False


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start_date": "2026-02-30"}, "start_date"),
        ({"start_date": "26-03-01"}, "start_date"),
        ({"end_date": "2026-03-01"}, "end_date"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../etc/passwd"}, "timezone"),
        ({"start_date": "2016-01-01"}, "end_date"),
        ({"team_ids": " , "}, "team_ids"),
        ({"page_size": "0"}, "page_size"),
    ],
)
async def test_bad_parameters_are_422_naming_them(api: Api, params: dict[str, str], param: str) -> None:
    query = {"start_date": START, "end_date": END, **params}
    status, body = await api.get("/team/daily/activity", params=query)
    assert status == 422, body
    assert body["error"]["param"] == param


async def test_dates_are_required(api: Api) -> None:
    status, body = await api.get("/user/daily/activity", params={"start_date": START})
    assert status == 422 and body["error"]["param"] == "end_date"

"""Management writes that race on one object: the loser of the race is told so (409, the
error shape; nothing changed by it), never a 500 — on SQLite and PostgreSQL, through the
admin app, many requests at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from admin_helpers import Api

pytestmark = pytest.mark.asyncio


async def _key(api: Api) -> str:
    key: str = (await api.ok("POST", "/key/generate", {"max_budget": 5}))["key"]
    return key


def _statuses(answers: list[tuple[int, Any]]) -> Counter[int]:
    for status, body in answers:
        if status >= 400:
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return Counter(status for status, _ in answers)


async def test_concurrent_regenerations_of_one_key_one_wins_the_others_conflict(api: Api) -> None:
    key = await _key(api)
    answers = await asyncio.gather(*(api.post("/key/regenerate", {"key": key}) for _ in range(10)))
    statuses = _statuses(list(answers))
    assert statuses[200] == 1 and set(statuses) <= {200, 404, 409}, statuses
    [new] = [body["key"] for status, body in answers if status == 200]
    assert (await api.get("/key/info", params={"key": new}))[0] == 200
    assert (await api.get("/key/info", params={"key": key}))[0] == 404


async def test_updates_racing_a_regeneration_or_a_delete_never_fail_with_500(api: Api) -> None:
    for last in ("/key/regenerate", "/key/delete"):
        key = await _key(api)
        body: dict[str, Any] = {"keys": [key]} if last == "/key/delete" else {"key": key}
        calls = [api.post("/key/update", {"key": key, "max_budget": n}) for n in range(1, 6)]
        answers = await asyncio.gather(*calls, api.post(last, body))
        statuses = _statuses(list(answers))
        assert set(statuses) <= {200, 404, 409}, (last, statuses)


async def test_a_team_updated_while_it_is_deleted_never_fails_with_500(api: Api) -> None:
    team = (await api.ok("POST", "/team/new", {"team_alias": "racing"}))["team_id"]
    calls = [api.post("/team/update", {"team_id": team, "max_budget": n}) for n in range(1, 6)]
    answers = await asyncio.gather(*calls, api.post("/team/delete", {"team_ids": [team]}))
    assert set(_statuses(list(answers))) <= {200, 404, 409}

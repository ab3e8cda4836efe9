"""``GET /global/spend/export?group_by=…&top=n`` (the dashboard's Spend table): the top n
values by cost keep their rows, the rest are one row per period with an empty value and
``other_groups``; the totals equal the raw ledger to the nano-USD; a non-admin's rest row
sums only what it may read; top without one dimension is a 422 naming it."""

from __future__ import annotations

from collections import defaultdict

import pytest
from admin_helpers import MASTER, Api
from sqlalchemy.ext.asyncio import AsyncEngine
from test_admin_export import DATES, export, ledger, seed

from export_helpers import DAYS, read_csv
from spendgate.core.keys import hash_key
from spendgate.ledger.exports import day_range

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
async def test_top_keys_and_the_rest_equal_the_ledger(api: Api, engine: AsyncEngine, tz: str) -> None:
    await seed(api, engine)
    start, end = day_range(*DAYS, tz)
    total, _ = await ledger(engine, start, end)
    params = {**DATES, "timezone": tz, "group_by": "key", "granularity": "hour"}
    status, _, body = await export(api, MASTER, **params)
    assert status == 200, body
    _, every = read_csv(body)
    per_key: dict[str, int] = defaultdict(int)
    for row in every:
        per_key[row["key"]] += int(row["cost_nanos"])
    assert len(per_key) == 3
    top = sorted(per_key, key=lambda k: (-per_key[k], k))[0]

    status, _, body = await export(api, MASTER, **params, top="1")
    assert status == 200, body
    header, rows = read_csv(body)
    assert header[-1] == "other_groups"
    kept = [r for r in rows if r["other_groups"] == "0"]
    rest = [r for r in rows if r["other_groups"] != "0"]
    assert {r["key"] for r in kept} == {top}
    assert {r["key"] for r in rest} == {""} and {r["other_groups"] for r in rest} == {"2"}
    assert sum(int(r["cost_nanos"]) for r in kept) == per_key[top]
    assert sum(int(r["cost_nanos"]) for r in rows) == total  # exact: nothing lost or doubled
    per_hour: dict[str, int] = defaultdict(int)
    for row in every:
        if row["key"] != top:
            per_hour[row["period_start"]] += int(row["cost_nanos"])
    assert {r["period_start"]: int(r["cost_nanos"]) for r in rest} == dict(per_hour)


async def test_a_members_rest_row_sums_only_their_keys(api: Api, engine: AsyncEngine) -> None:
    world = await seed(api, engine)
    status, _, body = await export(api, world.keys["member"], **DATES, group_by="key")
    assert status == 200, body
    visible = sum(int(r["cost_nanos"]) for r in read_csv(body)[1])
    status, _, body = await export(api, world.keys["member"], **DATES, group_by="key", top="1")
    assert status == 200, body
    rows = read_csv(body)[1]
    assert sum(int(r["cost_nanos"]) for r in rows) == visible
    assert {r["key"] for r in rows} <= {hash_key(world.keys["target"]), hash_key(world.keys["member"]), ""}


async def test_top_needs_one_dimension(api: Api, engine: AsyncEngine) -> None:
    for params in ({"top": "3"}, {"top": "3", "group_by": "team,model"}, {"top": "0", "group_by": "key"}):
        status, _, body = await export(api, MASTER, **DATES, **params)
        assert status == 422, (params, body)
        assert b'"param":"top"' in body

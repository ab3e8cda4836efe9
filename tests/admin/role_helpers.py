"""What the role-matrix tests share: the callers (one per kind of role), team t1 that the team
admin administers, a seeded database built once and copied for every case, and one call on
such a copy.

Why shared: test_admin_roles (every management and spend endpoint) and
test_admin_activity_roles (the daily activity endpoints) check the same callers against the
same world; writing them once keeps both matrices about the same people.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import MASTER, Api, admin_client, copy_database
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.stores.database import create_engine

__all__ = [
    "CALLERS",
    "NO",
    "OK",
    "T1_MEMBERS",
    "World",
    "add_callers",
    "call_on_copy",
    "matrix",
    "seeded_world",
]

OK, NO = 200, 403

CALLERS = (
    ("admin", "proxy_admin"),
    ("viewer", "proxy_admin_viewer"),
    ("tadmin", "internal_user"),
    ("member", "internal_user"),
    ("outsider", "internal_user"),
)
"""Each user a matrix calls as, and its role (the master key is the first caller)."""

T1_MEMBERS = [{"role": "admin", "user_id": "tadmin"}, {"role": "user", "user_id": "member"}]
"""Team t1: ``tadmin`` administers it, ``member`` is in it."""

World = tuple[Path, dict[str, str]]
"""A seeded database file and the raw keys of its callers by name."""


async def add_callers(api: Api, extra: Mapping[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """Create the :data:`CALLERS` (``extra[user]``: more fields of a user); their raw keys by
    name, the master key as ``master``."""
    keys = {"master": MASTER}
    for user, role in CALLERS:
        body = {"user_id": user, "user_role": role, **(extra or {}).get(user, {})}
        keys[user] = (await api.ok("POST", "/user/new", body))["key"]
    return keys


def seeded_world(
    template: Path, directory: Path, seed: Callable[[Api, AsyncEngine], Awaitable[dict[str, str]]]
) -> World:
    """A copy of the template database in ``directory``, filled by ``seed`` (which returns the
    callers' keys) through the admin app."""
    path = directory / "world.db"
    url = copy_database(template, path)

    async def run() -> dict[str, str]:
        engine = create_engine(url)
        try:
            async with admin_client(engine) as client:
                return await seed(Api(client), engine)
        finally:
            await engine.dispose()

    return path, asyncio.run(run())


async def call_on_copy(
    world: World, tmp_path: Path, method: str, route: str, payload: Any, key: str | None
) -> tuple[int, Any]:
    """One request to a fresh copy of the world (so a write never leaks into the next case):
    ``payload`` is the query of a GET, else the JSON body."""
    engine = create_engine(copy_database(world[0], tmp_path / "case.db"))
    try:
        async with admin_client(engine) as client:
            api = Api(client)
            if method == "GET":
                return await api.call(method, route, params=payload, key=key)
            return await api.call(method, route, payload, key=key)
    finally:
        await engine.dispose()


def matrix(cases: list[Any], roles: tuple[str, ...], expected: Callable[[Any], tuple[int, ...]]) -> list[Any]:
    """``pytest.param(case, role, status)`` for every case × role, named ``<case id>-<role>``."""
    return [
        pytest.param(case, role, expected(case)[i], id=f"{case[0]}-{role}")
        for case in cases
        for i, role in enumerate(roles)
    ]

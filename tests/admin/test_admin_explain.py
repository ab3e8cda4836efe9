"""POST /budget/explain: who may ask, what is passed to the enforcement layer, the answer's
shape; and the key-change hook the gateway uses to drop cached key look-ups."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from admin_helpers import MASTER, Api
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from spendgate.admin import ExplainTarget, build_admin_app
from spendgate.core.keys import hash_key
from spendgate.enforcement import BudgetLimit, Scope, ScopeWindowState


def _state(scope: Scope, window: str, spend: int, limit: int | None, verdict: Any) -> ScopeWindowState:
    budget = BudgetLimit.of(scope, window, limit)
    return ScopeWindowState(
        scope=scope,
        window=window,
        spend_nanos=spend,
        reserved_nanos=10,
        limit_nanos=limit,
        soft_nanos=None,
        period_start=datetime(2026, 11, 22, tzinfo=UTC),
        period_end=datetime(2026, 11, 23, tzinfo=UTC),
        verdict=verdict,
        budget=budget,
    )


async def test_explain_passes_the_keys_scopes_and_renders_every_window(sqlite_engine: AsyncEngine) -> None:
    seen: list[ExplainTarget] = []

    async def explainer(request: Request, target: ExplainTarget) -> list[ScopeWindowState]:
        seen.append(target)
        return [
            _state(Scope("key", target.key_id), "1d", 1_000_000_000, 1_000_000_001, "ok"),
            _state(Scope("team", "t1"), "1mo", 5_000_000_000, 5_000_000_000, "exceeded"),
            _state(Scope("user", "ann"), "lifetime", 0, None, "unlimited"),
        ]

    app = build_admin_app(sqlite_engine, MASTER, explainer=explainer)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client:
        api = Api(client)
        await api.ok("POST", "/team/new", {"team_id": "t1", "members_with_roles": [{"user_id": "ann"}]})
        await api.ok("POST", "/customer/new", {"user_id": "bound"})
        raw = (
            await api.ok(
                "POST",
                "/key/generate",
                {"user_id": "ann", "team_id": "t1", "end_user_id": "bound", "tags": ["x"]},
            )
        )["key"]
        out = await api.ok("POST", "/budget/explain", {"key": raw, "customer": "spoofed", "model": "gpt-4o"})
        assert seen[0] == ExplainTarget(
            key_id=hash_key(raw),
            key_alias=None,
            user_id="ann",
            team_id="t1",
            organization_id=None,
            customer="bound",  # a bound key's customer wins over the one asked about
            tags=("x",),
            model="gpt-4o",
        )
        assert out["verdict"] == "exceeded" and out["customer"] == "bound"
        first, second, third = out["windows"]
        assert first == {
            "scope": f"key:{hash_key(raw)}",
            "scope_type": "key",
            "scope_id": hash_key(raw),
            "window": "1d",
            "spend": 1,
            "reserved": Decimal("1E-8"),
            "limit": Decimal("1.000000001"),
            "soft_budget": None,
            "remaining": 0,  # limit - spend - reserved < 0 is shown as 0
            "period_start": "2026-11-22T00:00:00+00:00",
            "period_end": "2026-11-23T00:00:00+00:00",
            "verdict": "ok",
        }
        assert second["remaining"] == 0 and second["verdict"] == "exceeded"
        assert third["limit"] is None and third["remaining"] is None
        # the owner may ask; an outsider may not
        ann_key = (await api.ok("POST", "/key/generate", {"user_id": "ann"}))["key"]
        await api.ok("POST", "/budget/explain", {"key": hash_key(raw)}, key=ann_key)
        await api.ok("POST", "/user/new", {"user_id": "eve", "auto_create_key": False})
        eve = (await api.ok("POST", "/key/generate", {"user_id": "eve"}))["key"]
        status, _ = await api.post("/budget/explain", {"key": raw}, key=eve)
        assert status == 403
        status, _ = await api.post("/budget/explain", {"key": "sk-nope"})
        assert status == 404


async def test_explain_without_enforcement_is_501(sqlite_api: Api) -> None:
    raw = (await sqlite_api.ok("POST", "/key/generate", {}))["key"]
    status, err = await sqlite_api.post("/budget/explain", {"key": raw})
    assert status == 501 and err["error"]["code"] == "explain_unavailable"


async def test_key_changes_are_reported_after_the_commit(sqlite_engine: AsyncEngine) -> None:
    changed: list[str] = []
    app = build_admin_app(sqlite_engine, MASTER, on_key_change=lambda request, h: changed.append(h))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client:
        api = Api(client)
        raw = (await api.ok("POST", "/key/generate", {}))["key"]
        assert changed == []
        await api.ok("POST", "/key/block", {"key": raw})
        assert changed == [hash_key(raw)]
        new = (await api.ok("POST", "/key/regenerate", {"key": raw}))["key"]
        assert changed[-1] == hash_key(raw)
        status, _ = await api.post("/key/update", {"key": new, "team_id": "missing"})
        assert status == 404 and len(changed) == 2  # nothing committed, nothing reported
        await api.ok("POST", "/key/delete", {"keys": [new]})
        assert changed[-2:] == [hash_key(new), hash_key(raw)]  # its hash, then its stable id


async def test_a_non_admin_sees_the_per_model_windows_of_the_scopes_they_may_read(
    sqlite_engine: AsyncEngine,
) -> None:
    """Each per-model window follows its owner's rule: the key's, the caller's own user's,
    their team's and their organization's are shown; a customer's, another user's and
    another organization's are withheld (a model name may hold a colon)."""
    model = "llama3:8b"

    async def explainer(request: Request, target: ExplainTarget) -> list[ScopeWindowState]:
        owners = [
            Scope("key", target.key_id),
            Scope("user", "ann"),
            Scope("user", "zed"),
            Scope("team", "t1"),
            Scope("organization", "o1"),
            Scope("organization", "o2"),
            Scope("end_user", "c1"),
        ]
        return [_state(Scope.per_model(o, model), "1d", 0, 10, "ok") for o in owners]

    app = build_admin_app(sqlite_engine, MASTER, explainer=explainer)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client:
        api = Api(client)
        await api.ok("POST", "/organization/new", {"organization_id": "o1", "organization_alias": "o1"})
        await api.ok("POST", "/team/new", {"team_id": "t1", "organization_id": "o1"})
        await api.ok(
            "POST",
            "/user/new",
            {
                "user_id": "ann",
                "user_role": "internal_user",
                "organization_id": "o1",
                "auto_create_key": False,
            },
        )
        await api.ok(
            "POST", "/team/member_add", {"team_id": "t1", "member": [{"user_id": "ann", "role": "user"}]}
        )
        raw = (await api.ok("POST", "/key/generate", {"user_id": "ann", "team_id": "t1"}))["key"]
        mine = await api.ok("POST", "/budget/explain", {"key": raw, "model": model}, key=raw)
        full = await api.ok("POST", "/budget/explain", {"key": raw, "model": model})
    assert {w["scope"] for w in mine["windows"]} == {
        f"key_model:{hash_key(raw)}:{model}",
        f"user_model:ann:{model}",
        f"team_model:t1:{model}",
        f"organization_model:o1:{model}",
    }
    assert mine["withheld"] == sorted(
        [f"user_model:zed:{model}", f"organization_model:o2:{model}", f"end_user_model:c1:{model}"]
    )
    assert len(full["windows"]) == 7 and full["withheld"] == []

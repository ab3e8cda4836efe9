"""The response cache (issue #17 item 1), through the official openai SDK against a real
gateway and the mock provider: an identical call is answered from the cache without an
upstream call (counted on the mock), costs $0, and is recorded with ``cache_hit`` and the
cost it saved, which the spend endpoints report; ``no-cache`` / ``no-store`` / ``ttl`` /
``s-maxage`` do what LiteLLM's controls do; budgets never reserve for a hit; with Redis, an
answer cached by one gateway process is a hit on another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from cluster_helpers import REDIS_URL, Cluster, clear_redis, fetch, require_redis
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config

from spendgate.gateway.cache import CacheControls, LocalResponseStore, ResponseCache
from spendgate.http.errors import InvalidField
from spendgate.providers.base import ClientCall
from spendgate.providers.mock import MockServer

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def cached(
    mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayServer, Ledger]]:
    tmp = tmp_path_factory.mktemp("cache")
    config = make_config(
        mock_server.base_url,
        tmp / "spendgate.db",
        tmp / "journal",
        litellm_settings={"cache": True, "cache_params": {"type": "local", "ttl": 600}},
    )
    with GatewayServer(config) as server:
        yield server, Ledger(tmp / "spendgate.db")


@pytest.fixture
def sdk(cached: tuple[GatewayServer, Ledger], mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=cached[0].url, api_key=MASTER_KEY, max_retries=0, timeout=20) as c:
        yield c


def _ask(client: openai.OpenAI, text: str, **extra: Any) -> Any:
    extra.setdefault("max_tokens", 20)
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], **extra
    )


def _admin(gateway: GatewayServer) -> httpx.Client:
    return httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {MASTER_KEY}"})


def _upstream_calls(mock: MockServer) -> int:
    return int(mock.stats()["by_path"].get(CHAT, 0))


def test_second_identical_call_is_a_free_hit_with_its_saving_recorded_and_reported(
    sdk: openai.OpenAI, cached: tuple[GatewayServer, Ledger], mock: MockServer
) -> None:
    gateway, ledger = cached
    first = _ask(sdk, "what is a cache?", user="alice", temperature=0)
    assert first.headers["x-spendgate-cache-hit"] == "false"
    paid = first.headers["x-spendgate-response-cost"]
    assert float(paid) > 0
    assert _upstream_calls(mock) == 1
    # The same request (another end user and metadata do not change the answer): a hit.
    second = _ask(sdk, "what is a cache?", user="bob", temperature=0, extra_body={"metadata": {"x": "y"}})
    assert second.headers["x-spendgate-cache-hit"] == "true"
    assert second.headers["x-spendgate-response-cost"] == "0"
    assert second.headers["x-litellm-cache-key"] == first.headers["x-litellm-cache-key"]
    assert _upstream_calls(mock) == 1  # no upstream call
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage == first.parse().usage

    ids = (first.headers["x-spendgate-request-id"], second.headers["x-spendgate-request-id"])
    rows = ledger.wait(2, "event_id IN (?, ?)", ids)
    by_id = {r["event_id"]: r for r in rows}
    paid_row, hit_row = by_id[ids[0]], by_id[ids[1]]
    assert (paid_row["cache_hit"], paid_row["saved_nanos"]) == (0, 0)
    assert paid_row["cost_nanos"] == int((float(paid) * 1e9) + 0.5)
    assert hit_row["cache_hit"] == 1 and hit_row["cost_nanos"] == 0
    assert hit_row["saved_nanos"] == paid_row["cost_nanos"]  # what the call would have cost
    assert hit_row["status"] == "success" and hit_row["unpriced"] == 0
    assert hit_row["input_tokens"] == paid_row["input_tokens"]

    # The spend endpoints report the saving beside the spend.
    today = datetime.now(UTC).date().isoformat()
    with _admin(gateway) as admin:
        deadline = time.monotonic() + 10
        while True:
            spend = admin.get("/global/spend", params={"start_date": today, "end_date": today}).json()
            if spend["saved_cache_cost"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        report = admin.get("/global/spend/report", params={"start_date": today, "end_date": today}).json()
        logs = admin.get("/spend/logs", params={"request_id": ids[1], "summarize": "false"}).json()
    assert [(r["cache_hit"], r["spend"]) for r in logs] == [("True", 0)]
    assert logs[0]["saved_cache_cost"] == pytest.approx(hit_row["saved_nanos"] / 1e9)
    assert spend["saved_cache_cost"] == pytest.approx(hit_row["saved_nanos"] / 1e9)
    team = report[0]["teams"][0]
    gpt = next(m for m in team["metadata"] if m["model"] == "gpt-4o")
    assert gpt["cache_hits"] >= 1 and gpt["saved_cache_cost"] >= hit_row["saved_nanos"] / 1e9
    assert team["total_saved_cache_cost"] >= hit_row["saved_nanos"] / 1e9


def test_no_cache_bypasses_it_and_the_controls_never_go_upstream(
    sdk: openai.OpenAI, mock: MockServer
) -> None:
    _ask(sdk, "bypass me")
    assert _ask(sdk, "bypass me").headers["x-spendgate-cache-hit"] == "true"
    assert _upstream_calls(mock) == 1
    fresh = _ask(sdk, "bypass me", extra_body={"cache": {"no-cache": True}})
    assert fresh.headers["x-spendgate-cache-hit"] == "false"
    assert float(fresh.headers["x-spendgate-response-cost"]) > 0
    assert _upstream_calls(mock) == 2
    sent = [r for r in mock.requests() if r["path"] == CHAT]
    assert all("cache" not in (r.get("body") or {}) for r in sent)


def test_no_store_ttl_and_s_maxage(sdk: openai.OpenAI, mock: MockServer) -> None:
    _ask(sdk, "not stored", extra_body={"cache": {"no-store": True}})
    assert (
        _ask(sdk, "not stored", extra_body={"cache": {"no-store": True}}).headers["x-spendgate-cache-hit"]
        == "false"
    )
    assert _upstream_calls(mock) == 2
    _ask(sdk, "short lived", extra_body={"cache": {"ttl": 0.3}})
    assert _ask(sdk, "short lived").headers["x-spendgate-cache-hit"] == "true"
    time.sleep(0.4)
    assert _ask(sdk, "short lived").headers["x-spendgate-cache-hit"] == "false"  # expired
    time.sleep(0.2)
    assert (
        _ask(sdk, "short lived", extra_body={"cache": {"s-maxage": 0.1}}).headers["x-spendgate-cache-hit"]
        == "false"
    )
    assert (
        _ask(sdk, "short lived", extra_body={"cache": {"s-maxage": 60}}).headers["x-spendgate-cache-hit"]
        == "true"
    )


def test_bad_controls_are_422_naming_the_field(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as err:
        _ask(sdk, "x", extra_body={"cache": {"ttl": "soon"}})
    assert err.value.body["param"] == "cache.ttl"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as err:
        _ask(sdk, "x", extra_body={"cache": {"no-cahce": True}})
    assert err.value.body["param"] == "cache.no-cahce"  # type: ignore[index]


def test_a_streamed_call_is_replayed_from_the_cache(
    sdk: openai.OpenAI, cached: tuple[GatewayServer, Ledger], mock: MockServer
) -> None:
    def stream() -> tuple[str, Any, str]:
        with sdk.chat.completions.with_streaming_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "stream me a story"}],
            max_tokens=30,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            text, usage = "", None
            for chunk in response.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                if chunk.usage is not None:
                    usage = chunk.usage
            return text, usage, response.headers["x-spendgate-request-id"]

    text, usage, first_id = stream()
    again, usage_again, hit_id = stream()
    assert _upstream_calls(mock) == 1
    assert again == text and text
    assert usage_again.completion_tokens == usage.completion_tokens
    assert usage.model_extra["cost"] > 0 and usage_again.model_extra["cost"] == 0
    rows = {r["event_id"]: r for r in cached[1].wait(2, "event_id IN (?, ?)", (first_id, hit_id))}
    assert rows[hit_id]["cache_hit"] == 1 and rows[hit_id]["cost_nanos"] == 0
    assert rows[hit_id]["saved_nanos"] == rows[first_id]["cost_nanos"] > 0
    # A non-streamed request is another key: not answered with the stream's bytes.
    assert _ask(sdk, "stream me a story", max_tokens=30).headers["x-spendgate-cache-hit"] == "false"


def test_budgets_never_reserve_for_a_hit(cached: tuple[GatewayServer, Ledger], mock: MockServer) -> None:
    gateway, _ = cached
    with _admin(gateway) as admin:
        key = admin.post("/key/generate", json={"max_budget": 0}).raise_for_status().json()["key"]
    with openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0) as master:
        _ask(master, "budgeted")
    with openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0) as broke:
        hit = _ask(broke, "budgeted")  # $0: served although the key may spend nothing
        assert hit.headers["x-spendgate-cache-hit"] == "true"
        with pytest.raises(openai.APIStatusError) as refused:
            _ask(broke, "not cached yet")
        assert refused.value.status_code == 402
    assert _upstream_calls(mock) == 1


# -- the key, without a gateway ------------------------------------------------------------


def _call(**payload: Any) -> ClientCall:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **payload}
    return ClientCall(endpoint="chat", model="gpt-4o", payload=body, stream=bool(body.get("stream")))


def test_the_key_is_the_normalised_request() -> None:
    cache = ResponseCache(LocalResponseStore(1 << 20), {})
    base = cache.key(_call(temperature=0))
    assert cache.key(_call(temperature=0, user="u", metadata={"a": 1}, stream_options=None)) == base
    reordered = ClientCall(
        endpoint="chat",
        model="gpt-4o",
        payload={"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "gpt-4o"},
    )
    assert cache.key(reordered) == base
    assert cache.key(_call(temperature=1)) != base
    assert cache.key(_call(temperature=0, stream=True)) != base
    assert cache.key(_call(temperature=0, messages=[{"role": "user", "content": "hello"}])) != base
    spaced = ResponseCache(LocalResponseStore(1 << 20), {}, namespace="team-a")
    assert spaced.key(_call(temperature=0)) == f"team-a:{base}"


def test_controls_parse_litellm_names() -> None:
    assert CacheControls.parse({"no-cache": True, "ttl": 5, "s-maxage": 2}) == CacheControls(
        no_cache=True, ttl=5.0, s_maxage=2.0
    )
    with pytest.raises(InvalidField):
        CacheControls.parse({"ttl": 0})
    with pytest.raises(InvalidField):
        CacheControls.parse(["no-cache"])


# -- two gateway processes on one Redis --------------------------------------------------------


def test_redis_cache_hit_on_one_process_serves_another(
    tmp_path: Path, postgres_url: str, mock: MockServer
) -> None:
    require_redis()
    namespace = f"h8-cache-{time.monotonic_ns()}"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": "gpt-4o",
                        "litellm_params": {"model": "openai/gpt-4o", "api_base": mock.base_url},
                    }
                ],
                "general_settings": {
                    "master_key": MASTER_KEY,
                    "database_url": postgres_url,
                    "journal_dir": str(tmp_path / "journal"),
                    "redis_url": REDIS_URL,
                    "enforcement_key_prefix": namespace,
                },
                "litellm_settings": {
                    "cache": True,
                    "cache_params": {"type": "redis", "namespace": namespace},
                },
            }
        )
    )
    cluster = Cluster(config, tmp_path, postgres_url)
    try:
        cluster.start()
        cluster.start()
        answers = []
        for url in cluster.urls:
            with openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as client:
                answers.append(_ask(client, f"shared by every instance {namespace}"))
        assert [a.headers["x-spendgate-cache-hit"] for a in answers] == ["false", "true"]
        assert answers[1].headers["x-litellm-cache-key"].startswith(f"{namespace}:")
        assert _upstream_calls(mock) == 1
        hit_id = answers[1].headers["x-spendgate-request-id"]
        deadline = time.monotonic() + 15
        rows: list[Any] = []
        while not rows and time.monotonic() < deadline:
            rows = _run(
                fetch(
                    postgres_url,
                    "SELECT cache_hit, cost_nanos, saved_nanos FROM spend_events WHERE event_id = $1",
                    hit_id,
                )
            )
            time.sleep(0.1)
        assert (
            rows
            and rows[0]["cache_hit"] is True
            and rows[0]["cost_nanos"] == 0
            and rows[0]["saved_nanos"] > 0
        )
    finally:
        cluster.stop()
        clear_redis(namespace)


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)

"""Per-deployment rpm / tpm (``litellm_params.rpm`` / ``tpm``) through the real gateway: the
router skips a saturated deployment, answers 429 when every one is, and gives back the
tokens of a failed attempt. Deployments are told apart by their upstream ``api_key`` (the
mock's ``by_key`` counts); the cheaper one of a group is tried first (``lowest-cost``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio
from gateway_helpers import MASTER_KEY, GatewayServer, make_config
from limits_helpers import MESSAGES, error_of

from spendgate.errors import RateLimited
from spendgate.gateway.deployments import Deployment
from spendgate.gateway.routing import Router
from spendgate.providers.mock import MockServer

WINDOW = 20  # seconds: short, but far longer than any test here
CHEAP = "0.0000001"
DEAR = "0.000001"


def _deployment(mock: str, group: str, key: str, price: str, **limits: int) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {
            "model": "openai/gpt-4o",
            "api_base": mock,
            "api_key": key,
            "input_cost_per_token": price,
            "output_cost_per_token": price,
            **limits,
        },
        "model_info": {"id": key.removeprefix("sk-")},
    }


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("deployment-limits")
    url = mock_server.base_url
    models = [
        _deployment(url, "dep-rpm", "sk-dep-a", CHEAP, rpm=3),
        _deployment(url, "dep-rpm", "sk-dep-b", DEAR),
        _deployment(url, "dep-only", "sk-dep-c", CHEAP, rpm=2),
        _deployment(url, "dep-tpm", "sk-dep-d", CHEAP, tpm=50),
        _deployment(url, "dep-tpm", "sk-dep-e", DEAR),
        _deployment(url, "dep-release", "sk-dep-f", CHEAP, tpm=250),
        _deployment(url, "dep-release", "sk-dep-g", DEAR),
    ]
    config = make_config(
        url,
        tmp / "deployments.db",
        tmp / "journal",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"rate_limit_window_seconds": WINDOW},
    )
    server = GatewayServer(config).start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def client(gw: GatewayServer, mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        yield c


async def call(
    client: openai.AsyncOpenAI, model: str, max_tokens: int, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Any]:
    """(status, error body or {}, response headers)."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, max_tokens=max_tokens, extra_headers=headers
        )
    except openai.APIStatusError as exc:
        return exc.status_code, error_of(exc), exc.response.headers
    return raw.http_response.status_code, {}, raw.http_response.headers


def _served(mock: MockServer) -> dict[str, int]:
    """Upstream requests per deployment key (failed ones included)."""
    by_key: dict[str, dict[str, int]] = mock.stats()["by_key"]
    return {key: gauge["requests"] for key, gauge in by_key.items() if key.startswith("sk-dep-")}


@pytest.mark.asyncio
async def test_a_saturated_deployment_is_skipped_for_the_next_one(
    client: openai.AsyncOpenAI, mock: MockServer
) -> None:
    for _ in range(5):
        status, _, _ = await call(client, "dep-rpm", 10)
        assert status == 200
    # A (cheaper) takes its 3 requests of the window, then B serves.
    assert _served(mock) == {"sk-dep-a": 3, "sk-dep-b": 2}


@pytest.mark.asyncio
async def test_every_deployment_saturated_answers_429_with_retry_after(
    client: openai.AsyncOpenAI, mock: MockServer
) -> None:
    for _ in range(2):
        assert (await call(client, "dep-only", 10))[0] == 200
    status, error, headers = await call(client, "dep-only", 10)
    assert status == 429
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "model group 'dep-only'" in str(error["message"])
    assert 1 <= int(headers["retry-after"]) <= 2 * WINDOW  # the sliding window can need the next one
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"]
    assert _served(mock) == {"sk-dep-c": 2}  # the refused request never reached the upstream


@pytest.mark.asyncio
async def test_a_deployment_whose_tpm_cannot_hold_the_estimate_is_skipped(
    client: openai.AsyncOpenAI, mock: MockServer
) -> None:
    # 5 prompt + 10 output = 15 tokens fit in D's 50; 5 + 100 = 105 never do.
    assert (await call(client, "dep-tpm", 10))[0] == 200
    assert (await call(client, "dep-tpm", 100))[0] == 200
    assert _served(mock) == {"sk-dep-d": 1, "sk-dep-e": 1}


@pytest.mark.asyncio
async def test_a_failed_attempt_releases_and_settle_reconciles_deployment_tokens(
    client: openai.AsyncOpenAI, mock: MockServer
) -> None:
    mock.queue_faults({"status": 500, "api_key": "sk-dep-f", "times": 1})
    # F (tpm 250) fails; the retry goes to G. F's 105 tokens must come back.
    assert (await call(client, "dep-release", 100))[0] == 200
    assert _served(mock) == {"sk-dep-f": 1, "sk-dep-g": 1}
    # Two calls that reserve 105 each but really use 5 + 1: reconciled to 6 each at settle.
    small = {"x-mock-completion-tokens": "1"}
    for _ in range(2):
        assert (await call(client, "dep-release", 100, small))[0] == 200
    # 12 used: two more 105-token calls fit in 250 (12 + 210 = 222), the next one does not.
    for _ in range(3):
        assert (await call(client, "dep-release", 100))[0] == 200
    assert _served(mock) == {"sk-dep-f": 5, "sk-dep-g": 2}


@pytest.mark.asyncio
async def test_router_tries_the_group_and_its_fallbacks_then_names_the_soonest_retry() -> None:
    """Every deployment saturated, each freeing up after its own delay: the plan offers each
    once, sends nothing, and its error names the soonest retry."""

    def d(ident: str, group: str) -> Deployment:
        nothing: Any = None  # neither a target nor prices are used: no attempt is sent
        return Deployment(ident, group, nothing, "m", "openai", nothing)

    waits = {"a": 9.0, "b": 4.0, "c": 6.0}
    router = Router([d("a", "g"), d("b", "g"), d("c", "h")], fallbacks={"g": ["h"]})
    plan = router.attempts("g")
    asked: list[str] = []
    while (deployment := await plan.next()) is not None:
        asked.append(deployment.id)
        plan.refused(
            deployment,
            RateLimited(
                scope=f"deployment:{deployment.id}",
                kind="requests",
                limit=1,
                window_seconds=60,
                retry_after=waits[deployment.id],
            ),
        )
    refused = plan.error()
    assert sorted(asked) == ["a", "b", "c"] and plan.number == 0
    assert isinstance(refused, RateLimited)
    assert refused.retry_after == 4.0 and "model group 'g'" in str(refused)

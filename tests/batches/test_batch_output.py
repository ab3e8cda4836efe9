"""Pricing a batch's output (spendgate.batches.output): the bill is exactly the sum of the
lines priced one by one at the batch tier, and every line is accounted for.

The output files are built with the mock provider's own payload builders (the bodies its
batches write), line by line with varied usage, and one file comes from the mock's batch
store itself. The expected bill is computed independently, line by line, with
``spendgate.completion_cost(body, batch=True)`` and ``spendgate.price(…, service_tier="batch")``.
"""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

import spendgate
from spendgate.batches import output_pricer
from spendgate.batches.output import (
    MAX_PROBLEMS,
    BatchTotals,
    LineProblem,
    OutputPricer,
    PriceLine,
    batch_price_line,
    price_output,
    price_output_sync,
)
from spendgate.config import parse_config
from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.detect import usage_from_response
from spendgate.core.usage.model import Usage
from spendgate.gateway.deployments import build_deployments
from spendgate.providers.mock.anthropic_api import message_payload
from spendgate.providers.mock.batches import BatchStore, FileStore
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.message_batches import MessageBatchStore
from spendgate.providers.mock.openai_api import chat_completion_payload, completion_payload
from spendgate.providers.mock.openai_media import embeddings_payload
from spendgate.providers.mock.openai_responses import response_payload
from spendgate.providers.mock.options import MockOptions

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OPTIONS = MockOptions()


def batch_price(model: str, usage: Usage) -> CostBreakdown:
    """What the poller passes: the price at the batch tier, at a fixed time."""
    return spendgate.price(model, usage, service_tier="batch", at=AT)


def openai_line(custom_id: str, body: dict[str, Any], status: int = 200) -> bytes:
    """One line as OpenAI (and the mock's batch store) writes it."""
    response = {"status_code": status, "request_id": f"req_{custom_id}", "body": body}
    return orjson.dumps(
        {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": response, "error": None}
    )


def anthropic_line(custom_id: str, result: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "result": result})


def words(n: int) -> str:
    return "word " * n


def openai_bodies(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Varied mock answers: chat with cached and reasoning tokens, completions, embeddings,
    Responses, and one gpt-5.4 prompt above its 272k-token long-context threshold."""
    rng = random.Random(seed)
    bodies: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 6
        prompt = words(rng.randint(1, 600))
        if kind in (0, 1):
            model = rng.choice(["gpt-4o-mini", "gpt-4o", "gpt-4.1"])
            prompt_tokens = 4 + -(-len(prompt) // 4)
            controls = Controls(cached_tokens=rng.choice([0, 0, min(prompt_tokens, 128 * rng.randint(0, 8))]))
            body = {
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": rng.randint(1, 400),
            }
            bodies.append(chat_completion_payload(body, controls, OPTIONS))
        elif kind == 2:
            out = rng.randint(1, 500)
            controls = Controls(reasoning_tokens=rng.randint(0, out))
            body = {"model": rng.choice(["o3", "gpt-5"]), "messages": [{"role": "user", "content": prompt}]}
            bodies.append(chat_completion_payload({**body, "max_completion_tokens": out}, controls, OPTIONS))
        elif kind == 3:
            body = {"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": rng.randint(1, 200)}
            bodies.append(completion_payload(body, Controls(), OPTIONS))
        elif kind == 4:
            body = {"model": "text-embedding-3-small", "input": prompt}
            bodies.append(embeddings_payload(body, Controls(), OPTIONS))
        else:
            body = {"model": "gpt-5", "input": prompt, "max_output_tokens": rng.randint(1, 300)}
            bodies.append(response_payload(body, Controls(), OPTIONS))
    long_context = {
        "model": "gpt-5.4",
        "messages": [{"role": "user", "content": words(280_000)}],
        "max_tokens": 900,
    }
    bodies.insert(count // 2, chat_completion_payload(long_context, Controls(cached_tokens=50_000), OPTIONS))
    return bodies


def expected_nanos(bodies: list[dict[str, Any]]) -> int:
    """The bill computed independently, one line at a time."""
    total = 0
    for body in bodies:
        via_price = spendgate.price(body["model"], usage_from_response(body), service_tier="batch", at=AT)
        via_completion_cost = to_nano(spendgate.completion_cost(body, batch=True, at=AT))
        assert via_price.priced and via_price.total_nanos == via_completion_cost
        total += via_completion_cost
    return total


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# -- exactness --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_file() -> tuple[list[dict[str, Any]], bytes]:
    bodies = openai_bodies(600)
    data = b"\n".join(openai_line(f"r{i}", body) for i, body in enumerate(bodies)) + b"\n"
    return bodies, data


async def test_the_bill_is_the_sum_of_the_lines_priced_one_by_one(
    openai_file: tuple[list[dict[str, Any]], bytes],
) -> None:
    bodies, data = openai_file
    totals = await price_output(stream(chunks_of(data, 4096)), batch_price, api="openai", source="output")

    assert totals.cost_nanos == expected_nanos(bodies)
    assert (totals.lines_ok, totals.lines_failed, totals.lines_invalid, totals.unpriced_lines) == (
        len(bodies),
        0,
        0,
        0,
    )
    assert totals.problems == () and not totals.unpriced
    assert sum(totals.cost_items.values()) == totals.cost_nanos
    assert totals.usage == sum((usage_from_response(body) for body in bodies), Usage())
    assert totals.usage.cache_read_tokens > 50_000 and totals.usage.reasoning_tokens > 0
    assert set(totals.models) == {body["model"] for body in bodies}
    assert totals.catalogue_versions == (spendgate.default_price_book().layers[0].version,)


def test_the_long_context_line_is_billed_at_its_long_context_rates() -> None:
    body = chat_completion_payload(
        {"model": "gpt-5.4", "messages": [{"role": "user", "content": words(280_000)}], "max_tokens": 900},
        Controls(),
        OPTIONS,
    )
    usage = usage_from_response(body)
    assert usage.input_tokens > 272_000
    totals = price_output_sync([openai_line("long", body)], batch_price, api="openai")
    below = spendgate.price("gpt-5.4", usage.with_(input_tokens=272_000), service_tier="batch", at=AT)
    assert totals.cost_nanos == batch_price("gpt-5.4", usage).total_nanos
    # above the threshold the whole prompt is re-priced: far more than 272k tokens' worth
    assert totals.cost_nanos > below.total_nanos * 3 // 2


def test_every_chunking_and_both_entry_points_give_the_same_totals(
    openai_file: tuple[list[dict[str, Any]], bytes],
) -> None:
    _, data = openai_file
    whole = price_output_sync([data], batch_price, api="openai")
    for size in (1, 7, 1000, 65536):
        assert price_output_sync(chunks_of(data, size), batch_price, api="openai") == whole
    assert price_output_sync(data.splitlines(keepends=True), batch_price, api="openai") == whole
    assert price_output_sync([data], batch_price, api="openai", memoize=False) == whole
    assert asyncio.run(price_output(stream(chunks_of(data, 333)), batch_price, api="openai")) == whole


def test_a_batch_of_the_mock_providers_own_batch_store() -> None:
    files = FileStore()
    store = BatchStore(files, MockOptions(batch_polls=1))
    requests = [
        {
            "custom_id": f"fail-{i}" if i % 10 == 9 else f"ok-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": words(i + 1)}],
                "max_tokens": i + 1,
            },
        }
        for i in range(50)
    ]
    stored = files.add("in.jsonl", "batch", b"\n".join(orjson.dumps(r) for r in requests))
    batch = store.create(
        {"input_file_id": stored.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
        Controls(cached_tokens=2, reasoning_tokens=1),
    )
    batch = store.retrieve(batch["id"])
    assert batch["status"] == "completed"

    output = files.get(batch["output_file_id"]).data
    errors = files.get(batch["error_file_id"]).data
    totals = price_output_sync(
        chunks_of(output, 100), batch_price, api="openai", source="output"
    ) + price_output_sync([errors], batch_price, api="openai", source="error")
    bodies = [orjson.loads(line)["response"]["body"] for line in output.splitlines()]
    assert totals.cost_nanos == expected_nanos(bodies)
    assert (totals.lines_ok, totals.lines_failed, totals.lines_invalid) == (45, 5, 0)
    assert totals.usage.input_tokens == batch["usage"]["input_tokens"]
    assert totals.usage.output_tokens == batch["usage"]["output_tokens"]
    assert totals.usage.reasoning_tokens == 45


def test_anthropic_message_batch_results() -> None:
    store = MessageBatchStore(MockOptions(batch_polls=1))
    requests = [
        {
            "custom_id": f"fail-{i}" if i % 7 == 6 else f"ok-{i}",
            "params": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 10 + i,
                "messages": [{"role": "user", "content": words(3000 + i)}],
            },
        }
        for i in range(30)
    ]
    batch = store.create(
        {"requests": requests},
        Controls(cached_tokens=1000, cache_write_tokens=500, cache_write_1h_tokens=200),
        "http://mock",
    )
    store.retrieve(batch["id"], "http://mock")
    results = store.results(batch["id"])

    totals = price_output_sync(chunks_of(results, 50), batch_price, api="anthropic")

    messages = [
        orjson.loads(line)["result"]["message"] for line in results.splitlines() if b'"succeeded"' in line
    ]
    assert totals.cost_nanos == expected_nanos(messages)
    assert (totals.lines_ok, totals.lines_failed, totals.lines_invalid) == (26, 4, 0)
    assert totals.usage.cache_read_tokens == 26 * 1000 and totals.usage.cache_write_tokens == 26 * 700
    assert totals.usage.cache_write_1h_tokens == 26 * 200
    assert set(totals.cost_items) >= {"input", "cache_read", "cache_write", "output"}


def test_anthropic_failed_and_unknown_results() -> None:
    message = message_payload(
        {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        Controls(),
        OPTIONS,
    )
    lines = [
        anthropic_line("a", {"type": "succeeded", "message": message}),
        anthropic_line(
            "b", {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error"}}}
        ),
        anthropic_line("c", {"type": "canceled"}),
        anthropic_line("d", {"type": "expired"}),
        anthropic_line("e", {"type": "pending"}),
        anthropic_line("f", {"type": "succeeded", "message": {**message, "usage": None}}),
        anthropic_line("g", {"type": "succeeded"}),
        orjson.dumps({"custom_id": "h"}),
    ]
    totals = price_output_sync([b"\n".join(lines)], batch_price, api="anthropic")
    assert (totals.lines_ok, totals.lines_failed, totals.lines_invalid) == (1, 3, 4)
    assert totals.cost_nanos == batch_price("claude-sonnet-4-5", usage_from_response(message)).total_nanos
    assert [(p.line, p.kind) for p in totals.problems] == [
        (5, "invalid"),
        (6, "invalid"),
        (7, "invalid"),
        (8, "invalid"),
    ]
    assert "'pending'" in totals.problems[0].reason
    assert "usage" in totals.problems[1].reason
    assert "result.message" in totals.problems[2].reason


def test_batch_price_line_prices_at_the_deployments_own_batch_rates() -> None:
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": "house-model",
                    "litellm_params": {"model": "openai/gpt-4o-mini"},
                    "model_info": {
                        "input_cost_per_token": 0.000001,
                        "output_cost_per_token": 0.000002,
                        "input_cost_per_token_batches": 0.0000003,
                        "output_cost_per_token_batches": 0.0000007,
                    },
                }
            ]
        }
    )
    deployment = build_deployments(config, spendgate.default_price_book())[0]
    bodies = [chat(model="gpt-4o-mini-2024-07-18", prompt=p, out=o) for p, o in ((10, 5), (333, 77), (1, 1))]
    data = b"\n".join(openai_line(str(i), body) for i, body in enumerate(bodies))

    totals = price_output_sync([data], batch_price_line(deployment, AT), api="openai")

    usages = [usage_from_response(body) for body in bodies]
    # by hand: 0.3 nano-USD per prompt token, 0.7 per completion token, each line rounded half-even
    by_hand = sum(
        to_nano(Decimal("3e-7") * u.input_tokens + Decimal("7e-7") * u.output_tokens) for u in usages
    )
    assert totals.cost_nanos == by_hand
    assert by_hand != price_output_sync([data], batch_price, api="openai").cost_nanos  # not the catalogue's
    assert totals.models == ("gpt-4o-mini-2024-07-18",)
    assert totals.price_sources and totals.lines_ok == 3


# -- every line accounted for ------------------------------------------------------------------


def chat(model: str = "gpt-4o-mini", prompt: int = 40, out: int = 10) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": words(prompt)}], "max_tokens": out}
    return chat_completion_payload(body, Controls(), OPTIONS)


def test_failed_lines_cost_nothing_and_invalid_lines_are_counted_with_their_reason() -> None:
    good = chat()
    no_usage = {key: value for key, value in good.items() if key != "usage"}
    lines = [
        openai_line("ok", good),
        openai_line("bad-request", {"error": {"message": "nope"}}, status=400),
        orjson.dumps(
            {
                "id": "x",
                "custom_id": "expired",
                "response": None,
                "error": {"code": "batch_expired", "message": "expired"},
            }
        ),
        openai_line("server", good, status=500),
        b"{not json",
        b"",
        b"   ",
        openai_line("no-usage", no_usage),
        orjson.dumps([1, 2]),
        orjson.dumps({"custom_id": "no-response", "error": None}),
        orjson.dumps({"custom_id": "no-status", "response": {"body": good}, "error": None}),
        openai_line("no-model", {key: value for key, value in good.items() if key != "model"}),
        orjson.dumps({"custom_id": "body", "response": {"status_code": 200, "body": "text"}, "error": None}),
    ]
    totals = price_output_sync([b"\r\n".join(lines)], batch_price, api="openai", source="output")

    assert (totals.lines_ok, totals.lines_failed, totals.lines_invalid) == (1, 3, 7)
    assert totals.lines == 11  # the blank lines are not lines
    assert totals.cost_nanos == batch_price("gpt-4o-mini", usage_from_response(good)).total_nanos
    assert [p.line for p in totals.problems] == [5, 8, 9, 10, 11, 12, 13]
    assert {p.kind for p in totals.problems} == {"invalid"} and {p.source for p in totals.problems} == {
        "output"
    }
    reasons = [p.reason for p in totals.problems]
    assert reasons[0] == "not valid JSON"
    assert "no usage" in reasons[1]
    assert "not a JSON object" in reasons[2]
    assert "response is not an object" in reasons[3]
    assert "status_code" in reasons[4]
    assert "model is missing" in reasons[5]
    assert "body is not an object" in reasons[6]


def test_a_line_without_a_model_takes_the_default_model() -> None:
    good = chat()
    anonymous = {key: value for key, value in good.items() if key != "model"}
    totals = price_output_sync(
        [openai_line("a", anonymous)], batch_price, api="openai", default_model="gpt-4o-mini"
    )
    assert totals.lines_ok == 1 and totals.models == ("gpt-4o-mini",)
    assert totals.cost_nanos == batch_price("gpt-4o-mini", usage_from_response(good)).total_nanos


def test_a_line_with_usage_but_no_price_makes_the_totals_unpriced_never_zero() -> None:
    priced, unknown = chat(), chat(model="no-such-model-anywhere")
    data = b"\n".join([openai_line("a", priced), openai_line("b", unknown), openai_line("c", unknown)])
    totals = price_output_sync([data], batch_price, api="openai")

    assert totals.unpriced and totals.unpriced_lines == 2 and totals.lines_ok == 3
    assert totals.unpriced_reason is not None and "no-such-model-anywhere" in totals.unpriced_reason
    assert totals.cost_nanos == batch_price("gpt-4o-mini", usage_from_response(priced)).total_nanos
    assert totals.usage == usage_from_response(priced) + usage_from_response(unknown) + usage_from_response(
        unknown
    )
    assert [(p.line, p.kind) for p in totals.problems] == [(2, "unpriced"), (3, "unpriced")]
    assert totals.models == ("gpt-4o-mini", "no-such-model-anywhere")


def test_the_problems_kept_are_the_first_few_but_all_are_counted() -> None:
    data = b"\n".join([b"nope"] * (MAX_PROBLEMS + 5) + [openai_line("ok", chat())])
    totals = price_output_sync([data], batch_price, api="openai")
    assert totals.lines_invalid == MAX_PROBLEMS + 5 and totals.lines_ok == 1
    assert [p.line for p in totals.problems] == list(range(1, MAX_PROBLEMS + 1))


def test_a_line_longer_than_the_limit_is_invalid_however_it_arrives() -> None:
    short, long = openai_line("a", chat(out=5)), openai_line("b", chat(out=500))
    limit = len(short) + 10
    data = short + b"\n" + long + b"\n" + short
    for chunks in ([data], chunks_of(data, 16), chunks_of(data, len(short) + 1)):
        totals = price_output_sync(chunks, batch_price, api="openai", max_line_bytes=limit)
        assert (totals.lines_ok, totals.lines_invalid) == (2, 1)
        assert totals.problems == (LineProblem(2, "invalid", f"line longer than {limit} bytes"),)
    tail = price_output_sync(
        chunks_of(short + b"\n" + long, 16), batch_price, api="openai", max_line_bytes=limit
    )
    assert (tail.lines_ok, tail.lines_invalid) == (1, 1)


def test_a_byte_order_mark_and_a_missing_final_newline_are_read() -> None:
    line = openai_line("a", chat())
    totals = price_output_sync([b"\xef\xbb", b"\xbf" + line], batch_price, api="openai")
    assert totals.lines_ok == 1 and totals.lines_invalid == 0


def test_cost_items_add_up_to_the_bill_although_every_line_is_rounded_on_its_own() -> None:
    # embeddings of a few tokens cost a fraction of a nano-USD each at the batch rate
    bodies = [
        embeddings_payload({"model": "text-embedding-3-small", "input": words(n)}, Controls(), OPTIONS)
        for n in range(1, 200)
    ]
    totals = price_output_sync(
        [b"\n".join(openai_line(str(i), b) for i, b in enumerate(bodies))], batch_price, api="openai"
    )
    assert totals.cost_nanos == expected_nanos(bodies)
    assert sum(totals.cost_items.values()) == totals.cost_nanos
    exact = sum(
        (batch_price("text-embedding-3-small", usage_from_response(b)).total for b in bodies), Decimal(0)
    )
    assert abs(totals.cost_nanos - exact * 10**9) <= len(bodies)


# -- the price is asked once per distinct usage, and memory stays bounded ------------------------


def counting(price_line: PriceLine) -> tuple[PriceLine, list[int]]:
    calls = [0]

    def wrapped(model: str, usage: Usage) -> CostBreakdown:
        calls[0] += 1
        return price_line(model, usage)

    return wrapped, calls


def test_a_usage_seen_again_is_not_priced_again_unless_asked() -> None:
    lines = [openai_line(str(i), chat(prompt=i % 3 + 1)) + b"\n" for i in range(30)]
    memo_price, memo_calls = counting(batch_price)
    plain_price, plain_calls = counting(batch_price)
    memoized = price_output_sync(lines, memo_price, api="openai")
    plain = price_output_sync(lines, plain_price, api="openai", memoize=False)
    assert memoized == plain
    assert memo_calls[0] == 3 and plain_calls[0] == 30


def test_more_distinct_usages_than_the_memo_holds() -> None:
    template = chat()
    lines = []
    for i in range(9000):
        usage = {"prompt_tokens": 10 + i, "completion_tokens": 1 + i % 50, "total_tokens": 11 + i + i % 50}
        lines.append(openai_line(str(i), {**template, "usage": usage}))
    data = b"\n".join(lines)
    memoized = price_output_sync(chunks_of(data, 65536), batch_price, api="openai")
    plain = price_output_sync(chunks_of(data, 65536), batch_price, api="openai", memoize=False)
    assert memoized == plain and memoized.lines_ok == 9000
    assert memoized.usage.input_tokens == sum(10 + i for i in range(9000))


def test_the_memo_steps_aside_while_it_misses_and_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output_pricer, "_MEMO_SIZE", 16)
    monkeypatch.setattr(output_pricer, "_MEMO_PAUSE", 64)
    template = chat()

    def line(i: int, prompt: int) -> bytes:
        usage = {"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": prompt + 3}
        return openai_line(str(i), {**template, "usage": usage}) + b"\n"

    lines = [line(i, 100 + i) for i in range(40)] + [line(i, 7) for i in range(40, 140)]
    price_line, calls = counting(batch_price)
    totals = price_output_sync(lines, price_line, api="openai")
    assert totals == price_output_sync(lines, batch_price, api="openai", memoize=False)
    # 16 distinct lines fill the memo without a hit: the next 64 lines are priced one by one
    # (24 distinct, 40 repeated), then the memo is back and the last 60 cost one pricing
    assert calls[0] == 16 + 24 + 40 + 1


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    template = orjson.dumps(chat(out=200))

    def write(path: Path, lines: int) -> Path:
        with path.open("wb") as out:
            for i in range(lines):
                body = orjson.loads(template)
                body["usage"] = {"prompt_tokens": 50 + i, "completion_tokens": 200, "total_tokens": 250 + i}
                out.write(openai_line(str(i), body) + b"\n")
        return path

    async def blocks(path: Path) -> AsyncIterator[bytes]:
        with path.open("rb") as f:
            while block := f.read(65536):
                yield block

    def peak(path: Path) -> int:
        tracemalloc.start()
        try:
            totals = asyncio.run(price_output(blocks(path), batch_price, api="openai"))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert totals.lines_ok > 0

    small, large = write(tmp_path / "small.jsonl", 5_000), write(tmp_path / "large.jsonl", 20_000)
    peak(small)  # the price book and the extractors loaded once, before measuring
    assert peak(large) < peak(small) * 1.25  # equal, in fact: the memo and buffers are bounded


def test_totals_add_across_files() -> None:
    first = price_output_sync(
        [openai_line("a", chat()), b"\n", b"junk"], batch_price, api="openai", source="output"
    )
    second = price_output_sync(
        [openai_line("b", {"error": {}}, status=400), b"\n", openai_line("c", chat(model="x-unknown"))],
        batch_price,
        api="openai",
        source="error",
    )
    both = first + second
    assert both.cost_nanos == first.cost_nanos + second.cost_nanos
    assert (both.lines_ok, both.lines_failed, both.lines_invalid, both.unpriced_lines) == (2, 1, 1, 1)
    assert both.usage == first.usage + second.usage
    assert [(p.source, p.line, p.kind) for p in both.problems] == [
        ("output", 2, "invalid"),
        ("error", 2, "unpriced"),
    ]
    assert both.models == ("gpt-4o-mini", "x-unknown")
    assert BatchTotals() + first == first + BatchTotals() == first


def test_a_closed_pricer_refuses_more_input_and_keeps_its_totals() -> None:
    pricer = OutputPricer(batch_price, api="openai")
    pricer.feed(openai_line("a", chat()))
    totals = pricer.close()
    assert totals.lines_ok == 1 and pricer.close() == totals
    with pytest.raises(RuntimeError):
        pricer.feed(b"\n")


def test_an_unknown_api_is_refused() -> None:
    with pytest.raises(ValueError, match="api"):
        OutputPricer(batch_price, api="gemini")  # type: ignore[arg-type]


async def test_a_large_file_lets_other_tasks_run() -> None:
    line = openai_line("a", chat()) + b"\n"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield line * 200  # no await between chunks: the pricer has to yield itself

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    totals = await price_output(chunks(), batch_price, api="openai")
    task.cancel()
    assert totals.lines_ok == 4000
    assert ticks - before >= 4000 // (512 + 200)  # once per 512 lines, at a chunk's end

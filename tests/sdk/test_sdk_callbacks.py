"""Callbacks (issue #14 item 3): LiteLLM's success_callback / failure_callback / callbacks and
CustomLogger, fed by the instrumented clients, with the exact cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import openai
import pytest

import spendgate
from spendgate.errors import UpstreamStatusError
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.sdk import callbacks
from spendgate.sdk.budget import BUDGET

MESSAGES: list[Any] = [{"role": "user", "content": "Hey, how's it going?"}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def client(mock: MockServer) -> Iterator[openai.OpenAI]:
    with spendgate.openai.OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0) as c:
        yield c


def test_litellm_documented_success_callback(
    client: openai.OpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    # LiteLLM's "custom callback" example, with litellm replaced by spendgate.
    def track_cost_callback(
        kwargs: dict[str, Any], completion_response: Any, start_time: Any, end_time: Any
    ) -> None:
        try:
            response_cost = kwargs.get("response_cost", 0)
            print("streaming response_cost", response_cost)
        except Exception:
            pass

    spendgate.success_callback = [track_cost_callback]
    response = client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)
    cost = spendgate.cost_of(response)
    assert capsys.readouterr().out == f"streaming response_cost {float(cost)}\n"
    assert cost == spendgate.completion_cost(response)


def test_custom_logger_hooks_and_the_kwargs(client: openai.OpenAI) -> None:
    seen: dict[str, Any] = {}

    class Logger(spendgate.CustomLogger):
        def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
            seen["pre"] = (model, messages)

        def log_success_event(
            self, kwargs: dict[str, Any], response_obj: Any, start: datetime, end: datetime
        ) -> None:
            seen["success"] = (kwargs, response_obj, start, end)

    spendgate.callbacks = [Logger()]
    response = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=9,
        user="customer-7",
        extra_headers={"x-spendgate-metadata": '{"tags": ["batch-a"], "job": 3}'},
    )
    assert seen["pre"] == ("gpt-4o", MESSAGES)
    kwargs, response_obj, start, end = seen["success"]
    cost = spendgate.cost_of(response)
    assert kwargs["response_cost"] == float(cost)
    assert kwargs["cost_breakdown"].total == cost  # the exact CostBreakdown
    assert kwargs["model"] == "gpt-4o" and kwargs["cache_hit"] is False
    assert kwargs["litellm_params"]["metadata"] == {"tags": ["batch-a"], "job": 3}
    assert response_obj["id"] == response.id
    assert start <= end
    slo = kwargs["standard_logging_object"]
    assert slo["response_cost"] == float(cost)
    assert slo["cost_breakdown"]["total_cost"] == float(cost)
    assert slo["prompt_tokens"] == response.usage.prompt_tokens  # type: ignore[union-attr]
    assert slo["completion_tokens"] == 9
    assert slo["total_tokens"] == response.usage.total_tokens  # type: ignore[union-attr]
    assert slo["model"] == slo["model_group"] == "gpt-4o"
    assert slo["status"] == "success"
    assert slo["end_user"] == "customer-7"
    assert slo["request_tags"] == ["batch-a"]
    assert slo["metadata"] == {"tags": ["batch-a"], "job": 3}
    assert slo["startTime"] <= slo["endTime"]
    # LiteLLM's other fields spendgate can fill
    assert slo["trace_id"] == slo["id"] == kwargs["litellm_call_id"]
    assert slo["model_parameters"] == kwargs["optional_params"] == {"max_tokens": 9, "user": "customer-7"}
    assert slo["hidden_params"]["response_cost"] == float(cost)
    assert slo["hidden_params"]["api_base"] == kwargs["api_base"]
    assert slo["hidden_params"]["litellm_model_name"] == "gpt-4o"
    assert slo["error_information"] is None and slo["cache_key"] is None


def test_a_raising_callback_never_breaks_the_call(
    client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(*args: Any) -> None:
        raise RuntimeError("callback bug")

    class BrokenLogger(spendgate.CustomLogger):
        def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
            raise ValueError("pre bug")

        def log_success_event(self, *args: Any) -> None:
            raise ValueError("success bug")

    spendgate.success_callback = [broken, lambda *a: calls.append("after")]
    spendgate.callbacks = [BrokenLogger()]
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    assert response.choices[0].message.content
    assert spendgate.cost_of(response) > 0
    assert calls == ["after"]  # the other callbacks still ran
    assert "callback bug" in caplog.text and "success bug" in caplog.text and "pre bug" in caplog.text


def test_the_failure_callback_sees_the_upstream_error_with_cost_zero(client: openai.OpenAI) -> None:
    failures: list[tuple[dict[str, Any], Any]] = []
    successes: list[Any] = []
    spendgate.failure_callback = [lambda kwargs, response, start, end: failures.append((kwargs, response))]
    spendgate.success_callback = [lambda *args: successes.append(args)]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=5, extra_headers={"x-mock-status": "500"}
        )
    assert successes == []
    [(kwargs, response)] = failures
    assert isinstance(kwargs["exception"], UpstreamStatusError)
    assert kwargs["exception"].status_code == 500
    assert kwargs["response_cost"] == 0.0
    assert kwargs["standard_logging_object"]["status"] == "failure"
    assert kwargs["standard_logging_object"]["error_str"]
    info = kwargs["standard_logging_object"]["error_information"]
    assert info["error_code"] == "500" and info["error_class"] == "UpstreamStatusError"
    assert info["llm_provider"] == "openai" and info["error_message"] == str(kwargs["exception"])
    assert info["traceback"] == kwargs["traceback_exception"] and "UpstreamStatusError" in info["traceback"]
    assert "error" in response  # the upstream's error body
    assert spendgate.current_cost == 0


def test_the_failure_callback_sees_a_connection_error(mock: MockServer) -> None:
    failures: list[dict[str, Any]] = []
    spendgate.failure_callback = [lambda kwargs, *rest: failures.append(kwargs)]
    with spendgate.openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk", max_retries=0) as dead:
        with pytest.raises(openai.APIConnectionError):
            dead.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    assert len(failures) == 1 and failures[0]["response_cost"] == 0.0
    info = failures[0]["standard_logging_object"]["error_information"]
    assert info["error_code"] == "" and info["error_class"] == type(failures[0]["exception"]).__name__
    assert BUDGET.reserved_nanos == 0


async def test_async_callbacks_run_as_tasks_and_never_block_the_call(mock: MockServer) -> None:
    done: list[Decimal] = []

    class SlowLogger(spendgate.CustomLogger):
        async def async_log_success_event(
            self, kwargs: dict[str, Any], response_obj: Any, start: Any, end: Any
        ) -> None:
            await asyncio.sleep(0.5)
            done.append(kwargs["cost_breakdown"].total)

    async def raising(*args: Any) -> None:
        raise RuntimeError("async callback bug")

    spendgate.callbacks = [SlowLogger()]
    spendgate.success_callback = [raising]
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk", max_retries=0) as client:
        started = time.perf_counter()
        response = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
        elapsed = time.perf_counter() - started
    assert elapsed < 0.4  # the call did not wait for its callback
    assert done == []
    await callbacks.adrain()
    assert done == [spendgate.cost_of(response)]


def test_async_callbacks_of_a_sync_client_run_on_a_background_loop(client: openai.OpenAI) -> None:
    done: list[float] = []

    async def record(kwargs: dict[str, Any], *rest: Any) -> None:
        await asyncio.sleep(0.05)
        done.append(kwargs["response_cost"])

    spendgate.success_callback = [record]
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    callbacks.drain()
    assert done == [float(spendgate.cost_of(response))]


def test_a_stream_calls_back_once_when_it_ends(client: openai.OpenAI) -> None:
    seen: list[dict[str, Any]] = []
    spendgate.success_callback = [lambda kwargs, *rest: seen.append(kwargs)]
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=6, stream=True)
    assert seen == []
    for _ in stream:
        pass
    assert len(seen) == 1
    assert seen[0]["response_cost"] == float(spendgate.cost_of(stream))
    assert seen[0]["standard_logging_object"]["completion_tokens"] == 6


def test_a_stream_closed_early_is_billed_as_cancelled(client: openai.OpenAI) -> None:
    seen: list[dict[str, Any]] = []
    spendgate.success_callback = [lambda kwargs, *rest: seen.append(kwargs)]
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=40,
        stream=True,
        extra_headers={"x-mock-chunk-delay-ms": "5"},
    )
    next(iter(stream))
    stream.close()
    [kwargs] = seen
    slo = kwargs["standard_logging_object"]
    assert slo["spendgate_outcome"] == "cancelled" and slo["spendgate_estimated"] is True
    assert kwargs["response_cost"] > 0  # the prompt (and what was streamed) is billed
    assert spendgate.current_cost == spendgate.cost_of(stream)
    assert BUDGET.reserved_nanos == 0


async def test_an_async_chat_stream_read_to_its_end_is_a_success(mock: MockServer) -> None:
    """The openai SDK drains an async stream's body after ``[DONE]`` by iterating it again:
    that second reader continues the first; the stream is not billed as cut."""
    ended: list[dict[str, Any]] = []
    spendgate.callbacks = [lambda kwargs, *rest: ended.append(kwargs)]
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=6, stream=True
        )
        async for _ in stream:
            pass
        async with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, max_tokens=6) as helper:
            async for _ in helper:
                pass
    assert len(ended) == 2
    for kwargs in ended:
        slo = kwargs["standard_logging_object"]
        assert (slo["status"], slo["spendgate_outcome"]) == ("success", "success")
        assert slo["spendgate_estimated"] is False
        assert "exception" not in kwargs
        assert slo["completion_tokens"] == 6


# -- cancellations: billed, so the success callbacks (issue #14 doc review, item 2) -----------


def _ended() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    successes: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    spendgate.success_callback = [lambda kwargs, *rest: successes.append(kwargs)]
    spendgate.failure_callback = [lambda kwargs, *rest: failures.append(kwargs)]
    return successes, failures


def _assert_cancelled(kwargs: dict[str, Any]) -> None:
    slo = kwargs["standard_logging_object"]
    assert (slo["status"], slo["spendgate_outcome"], slo["spendgate_estimated"]) == (
        "success",
        "cancelled",
        True,
    )
    assert kwargs["response_cost"] > 0 and "exception" not in kwargs and slo["error_str"] is None


def test_a_sync_stream_closed_early_runs_the_success_callbacks(client: openai.OpenAI) -> None:
    successes, failures = _ended()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=40,
        stream=True,
        extra_headers={"x-mock-chunk-delay-ms": "5"},
    )
    next(iter(stream))
    stream.close()
    assert failures == [] and len(successes) == 1
    _assert_cancelled(successes[0])


async def test_every_async_cancellation_runs_the_success_callbacks(mock: MockServer) -> None:
    successes, failures = _ended()
    slow = {"x-mock-latency-ms": "400"}
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk", max_retries=0) as client:
        # a task cancelled while its call is upstream: billed its prompt estimate
        task = asyncio.ensure_future(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=5, extra_headers=slow
            )
        )
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # a stream closed early
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            max_tokens=40,
            stream=True,
            extra_headers={"x-mock-chunk-delay-ms": "5"},
        )
        await stream.__anext__()
        await stream.close()

        # a task cancelled while it reads a stream
        async def read() -> None:
            slow_stream = await client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                max_tokens=40,
                stream=True,
                extra_headers={"x-mock-chunk-delay-ms": "50"},
            )
            async for _ in slow_stream:
                pass

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0.2)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
    assert failures == [] and len(successes) == 3
    for kwargs in successes:
        _assert_cancelled(kwargs)
    assert spendgate.current_cost == sum(Decimal(str(k["cost_breakdown"].total)) for k in successes)
    assert BUDGET.reserved_nanos == 0


def test_the_kwargs_costs_are_the_breakdowns_sums() -> None:
    """``response_cost`` and the ``cost_breakdown`` of the standard logging object are the
    breakdown's own ``total``, ``prompt_cost`` and ``completion_cost`` (each summed once),
    to the last digit, with every item, a discount and a margin set."""
    from spendgate.core.pricing.breakdown import ITEMS, CostBreakdown
    from spendgate.core.usage.model import Usage

    digits = Decimal("0.1234567890123456789012345678")
    items: dict[str, Any] = {name: digits * (i + 1) / 7 for i, name in enumerate(ITEMS)}
    items["discount"] = -items["discount"]
    breakdown = CostBreakdown(model="m", priced=True, **items)
    record = callbacks.CallRecord(
        call_type="chat",
        model="m",
        provider="openai",
        api_base="http://x.test/v1",
        payload={"model": "m", "messages": MESSAGES},
        stream=False,
        async_call=False,
        start_time=datetime(2026, 12, 6),
        usage=Usage(input_tokens=3, output_tokens=5),
        breakdown=breakdown,
    )
    kwargs = callbacks.logging_kwargs(record)
    slo = kwargs["standard_logging_object"]
    assert kwargs["response_cost"] == slo["response_cost"] == float(breakdown.total)
    assert slo["cost_breakdown"] == {
        "input_cost": float(breakdown.prompt_cost),
        "output_cost": float(breakdown.completion_cost),
        "tool_usage_cost": float(breakdown.tools),
        "total_cost": float(breakdown.total),
        "total_nanos": breakdown.total_nanos,
    }
    unpriced = callbacks.logging_kwargs(
        callbacks.CallRecord(**{**_fields(record), "breakdown": CostBreakdown(model="m", priced=False)})
    )
    assert unpriced["response_cost"] is None and unpriced["standard_logging_object"]["cost_breakdown"] is None


def _fields(record: callbacks.CallRecord) -> dict[str, Any]:
    names = (
        "call_type",
        "model",
        "provider",
        "api_base",
        "payload",
        "stream",
        "async_call",
        "start_time",
        "usage",
    )
    return {name: getattr(record, name) for name in names}

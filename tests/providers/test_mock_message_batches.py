"""Anthropic message batches with the official anthropic SDK."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types.messages import MessageBatch
from anthropic.types.messages.batch_create_params import Request
from mock_helpers import chat_prompt

from spendgate.providers.mock import run_mock_provider

MODEL = "claude-haiku-4-5"


def _request(custom_id: str, text: str, max_tokens: int) -> Request:
    return {
        "custom_id": custom_id,
        "params": {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]},
    }


def test_lifecycle_and_results(anthropic_client: anthropic.Anthropic) -> None:
    batches = anthropic_client.messages.batches
    created = batches.create(
        requests=[
            _request("a", "Hello", 5),
            _request("fail-b", "nope", 5),
            _request("c", "Longer text here", 9),
        ],
        extra_headers={"x-mock-cached-tokens": "2"},
    )
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 3
    assert batches.retrieve(created.id).processing_status == "in_progress"
    ended = batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None and ended.results_url
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 2, 1)
    results = {row.custom_id: row.result for row in batches.results(created.id)}
    ok = results["c"]
    assert ok.type == "succeeded"
    assert ok.message.model == MODEL
    assert ok.message.usage.output_tokens == 9
    assert ok.message.usage.cache_read_input_tokens == 2
    assert ok.message.usage.input_tokens == chat_prompt([{"content": "Longer text here"}]) - 2
    failed = results["fail-b"]
    assert failed.type == "errored" and failed.error.error.type == "invalid_request_error"
    assert [b.id for b in batches.list(limit=1).data] == [created.id]


def test_cancel(anthropic_client: anthropic.Anthropic) -> None:
    batches = anthropic_client.messages.batches
    created = batches.create(requests=[_request("a", "x", 1)])
    canceling = batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 1
    [row] = list(batches.results(created.id))
    assert row.result.type == "canceled"


def test_errors(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve("msgbatch_missing")
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.create(requests=[])


def _cancel_and_poll(batches: anthropic.resources.messages.Batches, batch_id: str) -> MessageBatch:
    assert batches.cancel(batch_id).processing_status == "canceling"
    ended = batches.retrieve(batch_id)
    assert ended.processing_status == "ended" and ended.results_url
    return ended


def test_cancel_keeps_the_requests_done_before_it(anthropic_client: anthropic.Anthropic) -> None:
    batches = anthropic_client.messages.batches
    created = batches.create(
        requests=[
            _request("a", "Hello", 5),
            _request("fail-b", "nope", 4),
            _request("c", "Longer text here", 9),
            _request("d", "not reached", 6),
            _request("fail-e", "not reached", 2),
        ],
        extra_headers={"x-mock-batch-done-on-cancel": "3", "x-mock-cached-tokens": "2"},
    )
    counts = _cancel_and_poll(batches, created.id).request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled) == (0, 2, 1, 2)
    results = [(row.custom_id, row.result) for row in batches.results(created.id)]
    assert [(custom_id, result.type) for custom_id, result in results] == [
        ("a", "succeeded"),
        ("fail-b", "errored"),
        ("c", "succeeded"),
        ("d", "canceled"),
        ("fail-e", "canceled"),
    ]
    ok = results[2][1]
    assert ok.type == "succeeded"
    assert ok.message.usage.output_tokens == 9 and ok.message.usage.cache_read_input_tokens == 2
    assert ok.message.usage.input_tokens == chat_prompt([{"content": "Longer text here"}]) - 2
    failed = results[1][1]
    assert failed.type == "errored" and failed.error.error.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("second", "done", "counts", "types"),
    [
        pytest.param("fail-b", "7", (1, 1, 0), ["succeeded", "errored"], id="more-done-than-requests"),
        pytest.param("b", "0", (0, 0, 2), ["canceled", "canceled"], id="none-done"),
    ],
)
def test_cancel_with_done_count(
    anthropic_client: anthropic.Anthropic,
    second: str,
    done: str,
    counts: tuple[int, int, int],
    types: list[str],
) -> None:
    batches = anthropic_client.messages.batches
    created = batches.create(
        requests=[_request("a", "x", 1), _request(second, "y", 1)],
        extra_headers={"x-mock-batch-done-on-cancel": done},
    )
    ended = _cancel_and_poll(batches, created.id).request_counts
    assert (ended.succeeded, ended.errored, ended.canceled) == counts
    assert [row.result.type for row in batches.results(created.id)] == types


def test_done_on_cancel_server_option() -> None:
    with (
        run_mock_provider(batch_done_on_cancel=1) as server,
        anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        batches = client.messages.batches
        created = batches.create(requests=[_request("a", "x", 1), _request("b", "y", 1)])
        counts = _cancel_and_poll(batches, created.id).request_counts
        assert (counts.succeeded, counts.canceled) == (1, 1)
        assert [row.result.type for row in batches.results(created.id)] == ["succeeded", "canceled"]

"""Files and the batch lifecycle with the official openai SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest
import typer
import uvicorn
from mock_helpers import chat_prompt, tokens
from typer.testing import CliRunner

from spendgate.cli import mock as mock_cli
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.providers.mock.app import OPTIONS_ENV, app_from_environment


def _line(custom_id: str, content: str, max_tokens: int, model: str = "gpt-4o-mini") -> dict[str, object]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
        },
    }


def _upload(client: openai.OpenAI, lines: list[dict[str, object]]) -> str:
    data = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"
    uploaded = client.files.create(file=("batch.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data) and uploaded.filename == "batch.jsonl"
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    return uploaded.id


def test_lifecycle_with_output_and_error_files(openai_client: openai.OpenAI, mock: MockServer) -> None:
    lines = [
        _line("req-1", "Hello there", 5),
        _line("fail-2", "This one fails", 5),
        _line("req-3", "A somewhat longer question about everything", 8),
    ]
    file_id = _upload(openai_client, lines)
    batch = openai_client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "a"},
        extra_headers={"x-mock-cached-tokens": "2"},
    )
    assert batch.status == "validating" and batch.metadata == {"team": "a"}
    assert batch.request_counts is not None and batch.request_counts.total == 3
    first = openai_client.batches.retrieve(batch.id)
    assert first.status == "in_progress" and first.output_file_id is None
    done = openai_client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.model == "gpt-4o-mini"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.output_file_id and done.error_file_id
    # Polling again changes nothing and produces no new files.
    assert openai_client.batches.retrieve(batch.id).output_file_id == done.output_file_id

    output = [json.loads(row) for row in openai_client.files.content(done.output_file_id).text.splitlines()]
    assert [row["custom_id"] for row in output] == ["req-1", "req-3"]
    for row, line in zip(output, [lines[0], lines[2]], strict=True):
        assert row["error"] is None and row["id"].startswith("batch_req_")
        response = row["response"]
        assert response["status_code"] == 200 and response["request_id"]
        body = response["body"]
        assert body["model"] == "gpt-4o-mini" and body["object"] == "chat.completion"
        request = line["body"]
        assert isinstance(request, dict)
        assert body["usage"]["prompt_tokens"] == chat_prompt(request["messages"])
        assert body["usage"]["completion_tokens"] == request["max_tokens"]
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
        assert tokens(body["choices"][0]["message"]["content"]) == request["max_tokens"]

    [error] = [json.loads(row) for row in openai_client.files.content(done.error_file_id).text.splitlines()]
    assert error["custom_id"] == "fail-2"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["type"] == "invalid_request_error"

    assert done.usage is not None
    prompts = chat_prompt(lines[0]["body"]["messages"]) + chat_prompt(lines[2]["body"]["messages"])  # type: ignore[index]
    assert done.usage.input_tokens == prompts
    assert done.usage.output_tokens == 13
    assert done.usage.input_tokens_details.cached_tokens == 4
    output_file = openai_client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"


def test_batch_polls_header_and_listing(openai_client: openai.OpenAI) -> None:
    file_id = _upload(openai_client, [_line("a", "x", 1)])
    slow = openai_client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"x-mock-batch-polls": "4"},
    )
    statuses = [openai_client.batches.retrieve(slow.id).status for _ in range(4)]
    assert statuses == ["in_progress", "in_progress", "in_progress", "completed"]
    instant = openai_client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"x-mock-batch-polls": "0"},
    )
    assert instant.status == "completed"
    page = openai_client.batches.list(limit=1)
    assert [b.id for b in page.data] == [instant.id] and page.has_more
    ids = [b.id for b in openai_client.batches.list(limit=100)]
    assert ids.index(instant.id) < ids.index(slow.id)


def test_cancel(openai_client: openai.OpenAI) -> None:
    file_id = _upload(openai_client, [_line("a", "x", 1)])
    batch = openai_client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert openai_client.batches.cancel(batch.id).status == "cancelling"
    cancelled = openai_client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.output_file_id is None
    with pytest.raises(openai.BadRequestError):
        openai_client.batches.cancel(batch.id)


def test_invalid_batches(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        openai_client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    file_id = _upload(openai_client, [_line("a", "x", 1)])
    with pytest.raises(openai.BadRequestError):
        openai_client.batches.create(
            input_file_id=file_id, endpoint="/v1/moderations", completion_window="24h"
        )
    bad = openai_client.files.create(
        file=("bad.jsonl", b'{"custom_id": "a", "url": "/v1/embeddings"}\nnot json\n'), purpose="batch"
    )
    failed = openai_client.batches.create(
        input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert failed.status == "failed" and failed.errors is not None and failed.errors.data
    assert [e.code for e in failed.errors.data] == ["mismatched_url", "invalid_json_line"]


def test_embeddings_batch_and_time_based_completion() -> None:
    with (
        run_mock_provider(batch_seconds=0.2) as server,
        openai.OpenAI(base_url=server.url, api_key="k", max_retries=0) as client,
    ):
        line = {
            "custom_id": "e1",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "e", "input": "abcdefgh"},
        }
        uploaded = client.files.create(file=("e.jsonl", json.dumps(line).encode()), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        assert client.batches.retrieve(batch.id).status == "in_progress"
        time.sleep(0.25)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.error_file_id is None and done.output_file_id
        [row] = client.files.content(done.output_file_id).text.splitlines()
        assert json.loads(row)["response"]["body"]["usage"]["prompt_tokens"] == 2


def _create(client: openai.OpenAI, file_id: str, headers: dict[str, str] | None = None) -> str:
    batch = client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers=headers or {},
    )
    return batch.id


def _cancel_and_poll(client: openai.OpenAI, batch_id: str) -> openai.types.Batch:
    cancelling = client.batches.cancel(batch_id)
    assert cancelling.status == "cancelling" and cancelling.output_file_id is None
    cancelled = client.batches.retrieve(batch_id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    return cancelled


def _rows(client: openai.OpenAI, file_id: str) -> list[dict[str, object]]:
    return [json.loads(row) for row in client.files.content(file_id).text.splitlines()]


def test_cancel_keeps_the_lines_done_before_it(openai_client: openai.OpenAI) -> None:
    lines = [
        _line("req-1", "Hello there", 5),
        _line("fail-2", "This one fails", 4),
        _line("req-3", "A somewhat longer question about everything", 8),
        _line("req-4", "Not reached", 7),
        _line("fail-5", "Not reached either", 3),
    ]
    batch_id = _create(
        openai_client,
        _upload(openai_client, lines),
        {"x-mock-batch-done-on-cancel": "3", "x-mock-cached-tokens": "2", "x-mock-batch-polls": "9"},
    )
    assert openai_client.batches.retrieve(batch_id).status == "in_progress"
    cancelled = _cancel_and_poll(openai_client, batch_id)
    assert cancelled.request_counts is not None
    counts = cancelled.request_counts
    assert (counts.total, counts.completed, counts.failed) == (5, 2, 1)
    assert cancelled.output_file_id and cancelled.error_file_id

    output = _rows(openai_client, cancelled.output_file_id)
    assert [row["custom_id"] for row in output] == ["req-1", "req-3"]
    for row, line in zip(output, [lines[0], lines[2]], strict=True):
        response = row["response"]
        assert isinstance(response, dict) and response["status_code"] == 200
        request = line["body"]
        assert isinstance(request, dict)
        assert response["body"]["usage"]["prompt_tokens"] == chat_prompt(request["messages"])
        assert response["body"]["usage"]["completion_tokens"] == request["max_tokens"]
    [error] = _rows(openai_client, cancelled.error_file_id)
    assert error["custom_id"] == "fail-2"
    assert isinstance(error["response"], dict) and error["response"]["status_code"] == 400

    assert cancelled.usage is not None
    prompts = chat_prompt(lines[0]["body"]["messages"]) + chat_prompt(lines[2]["body"]["messages"])  # type: ignore[index]
    assert cancelled.usage.input_tokens == prompts
    assert cancelled.usage.output_tokens == 5 + 8
    assert cancelled.usage.input_tokens_details.cached_tokens == 4
    assert cancelled.usage.total_tokens == prompts + 13
    # Polling again changes nothing and produces no new files.
    again = openai_client.batches.retrieve(batch_id)
    assert again.status == "cancelled" and again.output_file_id == cancelled.output_file_id


def test_cancel_with_more_done_than_lines_keeps_every_line(openai_client: openai.OpenAI) -> None:
    lines = [_line("a", "one", 2), _line("b", "two", 3)]
    batch_id = _create(openai_client, _upload(openai_client, lines), {"x-mock-batch-done-on-cancel": "10"})
    cancelled = _cancel_and_poll(openai_client, batch_id)
    assert cancelled.request_counts is not None
    counts = cancelled.request_counts
    assert (counts.total, counts.completed, counts.failed) == (2, 2, 0)
    assert cancelled.output_file_id and cancelled.error_file_id is None
    assert [row["custom_id"] for row in _rows(openai_client, cancelled.output_file_id)] == ["a", "b"]
    assert cancelled.usage is not None and cancelled.usage.output_tokens == 5


@pytest.mark.parametrize("headers", [{}, {"x-mock-batch-done-on-cancel": "0"}])
def test_cancel_without_done_lines_has_no_output(
    openai_client: openai.OpenAI, headers: dict[str, str]
) -> None:
    file_id = _upload(openai_client, [_line("a", "x", 1), _line("fail-b", "y", 1)])
    cancelled = _cancel_and_poll(openai_client, _create(openai_client, file_id, headers))
    assert cancelled.output_file_id is None and cancelled.error_file_id is None and cancelled.usage is None
    assert cancelled.request_counts is not None
    counts = cancelled.request_counts
    assert (counts.total, counts.completed, counts.failed) == (2, 0, 0)


def test_done_on_cancel_server_option_and_header_override() -> None:
    with (
        run_mock_provider(batch_done_on_cancel=1) as server,
        openai.OpenAI(base_url=server.url, api_key="k", max_retries=0) as client,
    ):
        file_id = _upload(client, [_line("a", "x", 1), _line("b", "y", 1)])
        by_option = _cancel_and_poll(client, _create(client, file_id))
        assert by_option.output_file_id is not None and by_option.request_counts is not None
        assert (by_option.request_counts.completed, by_option.request_counts.failed) == (1, 0)
        assert [row["custom_id"] for row in _rows(client, by_option.output_file_id)] == ["a"]
        by_header = _cancel_and_poll(client, _create(client, file_id, {"x-mock-batch-done-on-cancel": "0"}))
        assert by_header.output_file_id is None and by_header.usage is None


def test_done_on_cancel_header_must_be_non_negative(openai_client: openai.OpenAI) -> None:
    file_id = _upload(openai_client, [_line("a", "x", 1)])
    with pytest.raises(openai.BadRequestError, match="x-mock-batch-done-on-cancel"):
        _create(openai_client, file_id, {"x-mock-batch-done-on-cancel": "-1"})


def test_cli_passes_batch_done_on_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.delenv(OPTIONS_ENV, raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda target, **_: served.append(target))
    app = typer.Typer()
    mock_cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `mock-provider` a subcommand
    result = CliRunner().invoke(app, ["mock-provider", "--batch-done-on-cancel", "4"])
    assert result.exit_code == 0, result.output
    assert served == ["spendgate.providers.mock.app:app_from_environment"]
    assert app_from_environment().options.batch_done_on_cancel == 4
    refused = CliRunner().invoke(app, ["mock-provider", "--batch-done-on-cancel", "-1"])
    assert refused.exit_code != 0

"""A batch's input checked line by line before anything reaches a provider: every bad file
names the exact line and field (and renders as a 400 at the HTTP edge), and a good one
becomes the requests the reservation is computed from."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from spendgate.batches import (
    MAX_FILE_LINES,
    MAX_MESSAGE_BATCH_REQUESTS,
    BatchInputError,
    parse_anthropic_requests,
    parse_openai_input,
)
from spendgate.http.errors import render_error
from spendgate.providers.base import estimate_prompt_tokens

CHAT = "/v1/chat/completions"
GROUPS = {"gpt", "gpt-mini", "claude", "secret", "embed"}
"""Model groups of the gateway; the key may use every one but ``secret``."""


def groups(name: str) -> bool:
    return name in GROUPS


def may_use(name: str) -> bool:
    return name != "secret"


def chat_body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": "hello there"}], **fields}


def line(
    custom_id: Any = "r1", *, method: Any = "POST", url: Any = CHAT, body: Any = None, without: str = ""
) -> dict[str, Any]:
    """One input line; ``without`` names a field left out."""
    item = {
        "custom_id": custom_id,
        "method": method,
        "url": url,
        "body": chat_body() if body is None else body,
    }
    item.pop(without, None)
    return item


def jsonl(*items: Any) -> bytes:
    return b"".join((i if isinstance(i, bytes) else orjson.dumps(i)) + b"\n" for i in items)


def ok(n: int) -> list[Any]:
    return [line(f"ok{i}") for i in range(n)]


def parse(data: bytes, endpoint: str = CHAT, **kw: Any) -> list[Any]:
    return parse_openai_input(data, endpoint=endpoint, may_use=may_use, groups=groups, **kw)


def refusal(call: Any) -> BatchInputError:
    with pytest.raises(BatchInputError) as info:
        call()
    return info.value


BAD_FILES: list[tuple[str, bytes, int | None, str]] = [
    ("empty file", b"", None, "file"),
    ("only blank lines", b"\n  \n\r\n", None, "file"),
    ("not JSON", jsonl(*ok(1), b"{not json", *ok(1)), 2, ""),
    ("not UTF-8", jsonl(b'{"custom_id": "\xff"}'), 1, ""),
    ("not an object", jsonl(*ok(2), [1, 2]), 3, ""),
    ("a JSON string", jsonl(b'"hello"'), 1, ""),
    ("blank line between requests", jsonl(*ok(1)) + b"\n" + jsonl(line("x")), 2, ""),
    ("custom_id missing", jsonl(line(), line("b", without="custom_id")), 2, "custom_id"),
    ("custom_id null", jsonl(line(None)), 1, "custom_id"),
    ("custom_id empty", jsonl(line("")), 1, "custom_id"),
    ("custom_id a number", jsonl(line(7)), 1, "custom_id"),
    ("custom_id with NUL", jsonl(line("a\x00b")), 1, "custom_id"),
    ("custom_id twice", jsonl(line("a"), line("b"), line("a")), 3, "custom_id"),
    ("method GET", jsonl(*ok(3), line("x", method="GET")), 4, "method"),
    ("method lower case", jsonl(line(method="post")), 1, "method"),
    ("method missing", jsonl(line(without="method")), 1, "method"),
    ("wrong url", jsonl(*ok(1), line("x", url="/v1/embeddings")), 2, "url"),
    ("url without /v1", jsonl(line(url="/chat/completions")), 1, "url"),
    ("body missing", jsonl(line(without="body")), 1, "body"),
    ("body a list", jsonl(line(body=[])), 1, "body"),
    ("body a string", jsonl(line(body="{}")), 1, "body"),
    ("model missing", jsonl(line(body={"messages": []})), 1, "body.model"),
    ("model a number", jsonl(line(body=chat_body(model=4))), 1, "body.model"),
    ("model empty", jsonl(line(body=chat_body(model=""))), 1, "body.model"),
    ("unknown model", jsonl(*ok(6), line("x", body=chat_body(model="nope"))), 7, "body.model"),
    ("model the key may not use", jsonl(line(body=chat_body(model="secret"))), 1, "body.model"),
    ("mixed model groups", jsonl(*ok(2), line("x", body=chat_body(model="gpt-mini"))), 3, "body.model"),
    ("messages missing", jsonl(line(body={"model": "gpt"})), 1, "body.messages"),
    ("messages not a list", jsonl(line(body=chat_body(messages="hi"))), 1, "body.messages"),
    ("message not an object", jsonl(line(body=chat_body(messages=["hi"]))), 1, "body.messages[0]"),
    ("message without role", jsonl(line(body=chat_body(messages=[{"content": "x"}]))), 1, "body.messages[0]"),
    (
        "message content a number",
        jsonl(
            line(body=chat_body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": 3}]))
        ),
        1,
        "body.messages[1].content",
    ),
    (
        "content part not an object",
        jsonl(line(body=chat_body(messages=[{"role": "user", "content": ["a"]}]))),
        1,
        "body.messages[0].content",
    ),
    ("max_tokens negative", jsonl(line(body=chat_body(max_tokens=-1))), 1, "body.max_tokens"),
    ("max_tokens past 2^31-1", jsonl(line(body=chat_body(max_tokens=2**31))), 1, "body.max_tokens"),
    ("max_tokens a boolean", jsonl(line(body=chat_body(max_tokens=True))), 1, "body.max_tokens"),
    ("max_tokens a float", jsonl(line(body=chat_body(max_tokens=10.0))), 1, "body.max_tokens"),
    (
        "max_completion_tokens 2^63",
        jsonl(line(body=chat_body(max_completion_tokens=2**63))),
        1,
        "body.max_completion_tokens",
    ),
    ("n zero", jsonl(line(body=chat_body(n=0))), 1, "body.n"),
    ("n past 128", jsonl(line(body=chat_body(n=129))), 1, "body.n"),
    ("tools not objects", jsonl(line(body=chat_body(tools=["f"]))), 1, "body.tools"),
]


@pytest.mark.parametrize(
    ("data", "at", "field"), [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_a_bad_file_names_its_line_and_field(data: bytes, at: int | None, field: str) -> None:
    error = refusal(lambda: parse(data))
    assert (error.line, error.field) == (at, field)
    assert error.param == (field if at is None else f"line {at}: {field}" if field else f"line {at}")
    assert error.code == ("invalid_batch_input" if at is None else "invalid_batch_line")
    if at is not None:
        assert error.message.startswith(f"line {at}: ")


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("/v1/completions", {"model": "gpt"}, "body.prompt"),
        ("/v1/completions", {"model": "gpt", "prompt": 5}, "body.prompt"),
        ("/v1/completions", {"model": "gpt", "prompt": [[1, "a"]]}, "body.prompt"),
        ("/v1/completions", {"model": "gpt", "prompt": [-1]}, "body.prompt"),
        ("/v1/completions", {"model": "gpt", "prompt": "x", "best_of": 200}, "body.best_of"),
        ("/v1/embeddings", {"model": "embed"}, "body.input"),
        ("/v1/embeddings", {"model": "embed", "input": {"text": "x"}}, "body.input"),
        ("/v1/embeddings", {"model": "embed", "input": [2**31]}, "body.input"),
        ("/v1/responses", {"model": "gpt", "input": 3}, "body.input"),
        ("/v1/responses", {"model": "gpt", "input": "x", "max_output_tokens": -5}, "body.max_output_tokens"),
    ],
)
def test_each_endpoint_checks_its_own_body(endpoint: str, body: dict[str, Any], field: str) -> None:
    error = refusal(lambda: parse(jsonl(line(url=endpoint, body=body)), endpoint))
    assert (error.line, error.field) == (1, field)


def test_an_endpoint_a_batch_cannot_run_is_refused_as_a_whole() -> None:
    error = refusal(lambda: parse(jsonl(line(url="/v1/images/generations")), "/v1/images/generations"))
    assert (error.line, error.field, error.param) == (None, "endpoint", "endpoint")


def test_the_line_limit_is_openais_and_counts_before_parsing() -> None:
    one = orjson.dumps(line("x")) + b"\n"
    error = refusal(lambda: parse(one * (MAX_FILE_LINES + 1)))
    assert (error.line, error.field) == (None, "file")
    assert "50001 lines" in error.message and "at most 50000" in error.message
    assert refusal(lambda: parse(jsonl(*ok(4)), max_lines=3)).field == "file"
    assert len(parse(jsonl(*ok(3)), max_lines=3)) == 3


def test_a_file_of_the_full_size_is_accepted() -> None:
    data = b"".join(orjson.dumps(line(f"r{i}")) + b"\n" for i in range(MAX_FILE_LINES))
    requests = parse(data + b"\n\n")
    assert len(requests) == MAX_FILE_LINES and requests[-1].line == MAX_FILE_LINES


def test_the_first_bad_line_is_the_one_named() -> None:
    data = jsonl(*ok(2), line("x", method="GET"), line("y", url="/v1/embeddings"))
    assert refusal(lambda: parse(data)).line == 3


def test_an_unknown_model_is_named_before_a_model_the_key_may_not_use() -> None:
    error = refusal(lambda: parse(jsonl(line(body=chat_body(model="nope")))))
    assert "does not exist" in error.message
    error = refusal(lambda: parse(jsonl(line(body=chat_body(model="secret")))))
    assert "may not use model 'secret'" in error.message


def test_duplicate_and_mixed_group_refusals_name_the_first_line() -> None:
    error = refusal(lambda: parse(jsonl(line("a"), line("b"), line("a"))))
    assert "first at line 1" in error.message
    error = refusal(lambda: parse(jsonl(line("a"), line("b", body=chat_body(model="claude")))))
    assert "line 1 names 'gpt'" in error.message and "'claude'" in error.message


def test_a_good_file_becomes_its_requests() -> None:
    first = chat_body(max_tokens=100, n=3)
    second = chat_body(
        max_completion_tokens=50, max_tokens=20, messages=[{"role": "user", "content": "x" * 40}]
    )
    data = (
        b"\xef\xbb\xbf" + jsonl(line("a", body=first)).replace(b"\n", b"\r\n") + jsonl(line("b", body=second))
    )
    a, b = parse(data + b"\n \n\r\n")
    assert (a.line, a.custom_id, a.model_group, a.max_output, a.choices) == (1, "a", "gpt", 100, 3)
    assert a.body == first and a.prompt_tokens == estimate_prompt_tokens(first)
    assert (b.line, b.custom_id, b.max_output, b.choices, b.prompt_tokens) == (2, "b", 50, 1, 4 + 10)
    (c,) = parse(jsonl(line("c", body=chat_body())))
    assert c.max_output is None and c.choices == 1


def test_every_batch_endpoint_accepts_its_own_bodies() -> None:
    cases = {
        "/v1/completions": [
            {"model": "gpt", "prompt": "hi"},
            {"model": "gpt", "prompt": [[1, 2], [3]], "best_of": 4},
        ],
        "/v1/embeddings": [{"model": "embed", "input": ["a", "b"]}, {"model": "embed", "input": [1, 2, 3]}],
        "/v1/responses": [
            {"model": "gpt", "input": "hi", "max_output_tokens": 9},
            {"model": "gpt", "input": []},
        ],
    }
    for endpoint, bodies in cases.items():
        data = jsonl(*(line(f"r{i}", url=endpoint, body=body) for i, body in enumerate(bodies)))
        requests = parse(data, endpoint)
        assert [r.body for r in requests] == bodies
    data = jsonl(
        *(line(f"r{i}", url="/v1/completions", body=b) for i, b in enumerate(cases["/v1/completions"]))
    )
    text, token_ids = parse(data, "/v1/completions")
    assert (text.prompt_tokens, text.choices) == (1, 1)
    assert (token_ids.prompt_tokens, token_ids.choices) == (3, 4)
    string, empty = parse(
        jsonl(*(line(f"r{i}", url="/v1/responses", body=b) for i, b in enumerate(cases["/v1/responses"]))),
        "/v1/responses",
    )
    assert (string.prompt_tokens, string.max_output) == (4 + 1, 9)  # a string input is one message
    assert empty.prompt_tokens == 0


# -- Anthropic message batches -------------------------------------------------------------------


def message_request(custom_id: Any = "r1", **params: Any) -> dict[str, Any]:
    body = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **params}
    return {"custom_id": custom_id, "params": {k: v for k, v in body.items() if v is not None}}


def parse_messages(requests: object, **kw: Any) -> list[Any]:
    return parse_anthropic_requests(requests, may_use=may_use, groups=groups, **kw)


BAD_REQUESTS: list[tuple[str, object, int | None, str]] = [
    ("requests not a list", {"custom_id": "a"}, None, "requests"),
    ("no requests", [], None, "requests"),
    ("request not an object", [message_request(), "x"], 2, ""),
    ("custom_id missing", [{"params": message_request()["params"]}], 1, "custom_id"),
    ("custom_id with a space", [message_request("a b")], 1, "custom_id"),
    ("custom_id of 65 characters", [message_request("a" * 65)], 1, "custom_id"),
    ("custom_id twice", [message_request("a"), message_request("a")], 2, "custom_id"),
    ("params missing", [{"custom_id": "a"}], 1, "params"),
    ("params a list", [{"custom_id": "a", "params": []}], 1, "params"),
    ("model missing", [message_request(model=None)], 1, "params.model"),
    ("unknown model", [message_request(), message_request("b", model="nope")], 2, "params.model"),
    ("model the key may not use", [message_request(model="secret")], 1, "params.model"),
    ("mixed model groups", [message_request(), message_request("b", model="gpt")], 2, "params.model"),
    ("max_tokens missing", [message_request(max_tokens=None)], 1, "params.max_tokens"),
    ("max_tokens a string", [message_request(max_tokens="64")], 1, "params.max_tokens"),
    ("max_tokens past 2^31-1", [message_request(max_tokens=2**31)], 1, "params.max_tokens"),
    ("messages missing", [message_request(messages=None)], 1, "params.messages"),
    ("message not an object", [message_request(messages=[1])], 1, "params.messages[0]"),
]


@pytest.mark.parametrize(
    ("requests", "at", "field"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_a_bad_message_batch_names_its_request_and_field(
    requests: object, at: int | None, field: str
) -> None:
    error = refusal(lambda: parse_messages(requests))
    assert (error.line, error.field) == (at, field)
    if at is None:
        assert error.param == field
    else:
        assert error.param == f"requests[{at - 1}]" + (f".{field}" if field else "")


def test_a_message_batch_holds_at_most_anthropics_limit() -> None:
    error = refusal(
        lambda: parse_messages([message_request(f"r{i}") for i in range(MAX_MESSAGE_BATCH_REQUESTS + 1)])
    )
    assert (error.line, error.field) == (None, "requests")
    assert (
        refusal(lambda: parse_messages([message_request("a"), message_request("b")], max_requests=1)).line
        is None
    )


def test_a_good_message_batch_becomes_its_requests() -> None:
    requests = [message_request("a-1", system="be brief"), message_request("B_2", max_tokens=1000)]
    a, b = parse_messages(requests)
    assert (a.line, a.custom_id, a.model_group, a.max_output, a.choices) == (1, "a-1", "claude", 64, 1)
    assert a.body is requests[0]["params"] and a.prompt_tokens == (4 + 1) + (4 + 2)
    assert (b.line, b.custom_id, b.max_output) == (2, "B_2", 1000)


# -- the HTTP edge ---------------------------------------------------------------------------------


def test_a_bad_line_renders_as_a_400_naming_line_and_field() -> None:
    error = refusal(lambda: parse(jsonl(*ok(6), line("x", body=chat_body(model="nope")))))
    status, body, headers = render_error(error)
    assert status == 400 and headers == {}
    assert orjson.loads(body) == {
        "error": {
            "message": "line 7: model 'nope' does not exist on this gateway (GET /v1/models lists them)",
            "type": "invalid_request_error",
            "param": "line 7: body.model",
            "code": "invalid_batch_line",
        }
    }


def test_a_message_batch_refusal_renders_in_the_requests_words() -> None:
    error = refusal(lambda: parse_messages([message_request(), message_request("b", max_tokens=None)]))
    status, body, _ = render_error(error)
    assert status == 400
    assert orjson.loads(body)["error"] == {
        "message": "requests[1]: missing required field 'max_tokens'",
        "type": "invalid_request_error",
        "param": "requests[1].params.max_tokens",
        "code": "invalid_batch_line",
    }


def test_a_refusal_of_the_whole_file_renders_as_a_400_naming_the_file() -> None:
    status, body, _ = render_error(refusal(lambda: parse(b"\n")))
    error = orjson.loads(body)["error"]
    assert status == 400
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "file",
        "invalid_batch_input",
    )
    assert error["message"] == "the input file holds no requests"

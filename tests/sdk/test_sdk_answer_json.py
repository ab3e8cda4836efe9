"""The SDK reads the metered path's parse of an answer only where it is the value the
standard library would give (``spendgate.sdk.answer_json``), once, and never one a
callback was given."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import spendgate
from spendgate.sdk.answer_json import hand_on
from spendgate.sdk.httpx_compat import module_of_type

HTTP: Any = module_of_type(openai.DefaultHttpxClient)
GPT = "gpt-4o"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]

_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**18, 10**19]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_json = st.recursive(
    st.none() | st.booleans() | _numbers | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _as_sent(value: Any, spaced: bool) -> bytes:
    return json.dumps(value, indent=1 if spaced else None, ensure_ascii=not spaced).encode()


@given(_json, st.booleans())
def test_the_first_read_is_what_the_standard_library_reads(value: Any, spaced: bool) -> None:
    body = _as_sent(value, spaced)
    response = httpx.Response(200, content=body)
    hand_on(response, orjson.loads(body))
    expected = repr(json.loads(body))  # repr: an int is not a float, -0.0 is not 0.0
    assert repr(response.json()) == expected
    assert repr(response.json()) == expected  # the second read parses again


_number_text = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
_number_text |= st.integers(min_value=-(2**70), max_value=2**70).map(str)
_string_text = st.text(max_size=12).map(lambda t: json.dumps(t, ensure_ascii=False)) | st.sampled_from(
    ['"\\u00e9"', '"\\ud83d\\ude00"', '"\\u2028"', '"a\\"b"', '"\\/"', '"\ufeff"']
)
_space = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])


@st.composite
def _json_texts(draw: st.DrawFn) -> bytes:
    """JSON written as a server might write it: numbers in any form (exponents, long
    fractions, 19 digits and more), escapes, spacing, duplicate keys."""
    scalars = st.one_of(_number_text, _string_text, st.sampled_from(["true", "null", "[]"]))
    items = draw(st.lists(scalars, max_size=6))
    spaced = [draw(_space) + item + draw(_space) for item in items]
    names = st.sampled_from(['"a"', '"b"', '"usage"'])
    keys = draw(st.lists(names, min_size=len(items), max_size=len(items)))
    if draw(st.booleans()):
        return ("[" + ",".join(spaced) + "]").encode()
    return ("{" + ",".join(f"{k}:{v}" for k, v in zip(keys, spaced, strict=True)) + "}").encode()


@given(_json_texts() | st.binary(max_size=64))
def test_any_body_orjson_accepts_reads_as_the_standard_library_reads_it(body: bytes) -> None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # the metered path has no parse to hand on
    response = httpx.Response(200, content=body)
    hand_on(response, parsed)
    assert repr(response.json()) == repr(json.loads(body))


def test_an_integer_beyond_64_bits_is_left_to_the_standard_library() -> None:
    body = b'{"created": 18446744073709551616, "n": -9223372036854775809}'
    parsed = orjson.loads(body)
    assert isinstance(parsed["created"], float)  # why: orjson reads it as a float
    response = httpx.Response(200, content=body)
    hand_on(response, parsed)
    assert response.json() == {"created": 2**64, "n": -(2**63) - 1}


def test_the_parse_is_handed_on_once_and_arguments_parse_again() -> None:
    body = b'{"a": [1, 2.5]}'
    parsed = orjson.loads(body)
    response = httpx.Response(200, content=body)
    hand_on(response, parsed)
    assert response.json() is parsed
    again = response.json()
    assert again == parsed and again is not parsed
    other = httpx.Response(200, content=body)
    hand_on(other, orjson.loads(body))
    assert other.json(parse_float=str) == {"a": [1, "2.5"]}


def _answer(**fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": GPT,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        **fields,
    }


def _client(answer: bytes, *, instrumented: int) -> openai.OpenAI:
    http = HTTP.Client(transport=HTTP.MockTransport(lambda _: HTTP.Response(200, content=answer)))
    client = openai.OpenAI(api_key="sk-test", base_url="http://upstream.test/v1", http_client=http)
    return spendgate.instrument(client) if instrumented else client


@pytest.mark.parametrize(
    "answer",
    [_answer(), _answer(created=2**64 + 5, system_fingerprint="fp_12345678901234567890123")],
    ids=["plain", "big-integer"],
)
def test_an_instrumented_result_equals_the_plain_clients(answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    clients = [_client(body, instrumented=on) for on in (0, 1)]
    results = [client.chat.completions.create(model=GPT, messages=MESSAGES) for client in clients]
    plain, instrumented = (r.model_dump() for r in results)
    assert repr(instrumented) == repr(plain)
    assert spendgate.cost_of(results[1]) > 0


def test_the_parse_is_handed_on_and_used_up_by_the_sdk() -> None:
    """The shortcut takes effect: a raw response carries the parse until the SDK reads it."""
    client = _client(json.dumps(_answer()).encode(), instrumented=1)
    raw = client.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
    assert "json" in vars(raw.http_response)
    assert raw.parse().choices[0].message.content == "hi"
    assert vars(raw.http_response)["json"]._kept == []  # popped by the SDK's one read
    big = _client(json.dumps(_answer(created=2**64)).encode(), instrumented=1)
    kept = big.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES).http_response
    assert "json" not in vars(kept)


def test_a_callback_that_changes_the_answer_does_not_change_the_result() -> None:
    seen: list[Any] = []

    def redact(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        response["choices"][0]["message"]["content"] = "[redacted]"
        seen.append(response)

    spendgate.success_callback = [redact]
    try:
        result = _client(json.dumps(_answer()).encode(), instrumented=True).chat.completions.create(
            model=GPT, messages=MESSAGES
        )
    finally:
        spendgate.success_callback = []
    assert seen and seen[0]["choices"][0]["message"]["content"] == "[redacted]"
    assert result.choices[0].message.content == "hi"


def _async_client(answer: bytes, *, instrumented: int) -> openai.AsyncOpenAI:
    http = HTTP.AsyncClient(transport=HTTP.MockTransport(lambda _: HTTP.Response(200, content=answer)))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://upstream.test/v1", http_client=http)
    return spendgate.instrument(client) if instrumented else client


@pytest.mark.parametrize("answer", [_answer(), _answer(created=2**64 + 5)], ids=["plain", "big-integer"])
async def test_an_async_instrumented_result_equals_the_plain_clients(answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    clients = [_async_client(body, instrumented=on) for on in (0, 1)]
    results = [await client.chat.completions.create(model=GPT, messages=MESSAGES) for client in clients]
    assert repr(results[1].model_dump()) == repr(results[0].model_dump())
    assert spendgate.cost_of(results[1]) > 0

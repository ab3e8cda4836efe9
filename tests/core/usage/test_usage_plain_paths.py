"""The extractors' shortcuts for parsed bodies give the general path's answer, always.

A parsed body (plain dicts) takes a shortcut; with the shortcuts turned off the same
payload takes the general path. On random payloads — valid counts, and values of every
wrong shape the general path refuses — both give the same ``Usage`` or both raise a
``UsageError`` with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.core.usage import anthropic as anthropic_usage
from spendgate.core.usage import from_anthropic_message, from_openai_chat, from_openai_completion
from spendgate.core.usage import openai as openai_usage
from spendgate.core.usage._access import dig, get
from spendgate.core.usage.model import Usage, UsageError, token_usage
from spendgate.core.usage.openai import openai_token_usage
from spendgate.core.usage.tier import reported_service_tier, service_tier_name

# Counts as bodies carry them, and the values the general path refuses or reads specially.
good = st.integers(0, 5000)
odd: st.SearchStrategy[Any] = st.sampled_from([-1, 1.0, 2.5, True, "3", None, [], {}])
value = st.one_of(good, good, good, odd)


def _maybe(draw: st.DrawFn, key: str, strategy: st.SearchStrategy[Any], out: dict[str, Any]) -> None:
    if draw(st.booleans()):
        out[key] = draw(strategy)


@st.composite
def details(draw: st.DrawFn, keys: tuple[str, ...]) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, 3, "x", []]))
    out: dict[str, Any] = {}
    for key in keys:
        _maybe(draw, key, value, out)
    if "cached_tokens" in keys and draw(st.integers(0, 5)) == 0:
        out["cached_tokens_details"] = draw(st.one_of(details(("audio_tokens",)), st.just(None)))
    return out


IN_KEYS = (
    "cached_tokens",
    "cache_write_tokens",
    "cache_creation_tokens",
    "audio_tokens",
    "image_tokens",
    "video_tokens",
)
OUT_KEYS = ("reasoning_tokens", "audio_tokens", "image_tokens", "video_tokens")


@st.composite
def openai_usages(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens"):
        _maybe(draw, key, value, out)
    for key in ("prompt_cache_hit_tokens", "cached_tokens"):
        if draw(st.integers(0, 4)) == 0:
            out[key] = draw(value)
    for key in ("prompt_tokens_details", "input_tokens_details", "input_token_details"):
        if draw(st.integers(0, 2)) == 0:
            out[key] = draw(details(IN_KEYS))
            if isinstance(out[key], dict) and draw(st.integers(0, 3)) == 0:  # LiteLLM's TTL split
                ttl = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
                out[key]["cache_creation_token_details"] = draw(details(ttl))
    if draw(st.integers(0, 5)) == 0:
        out["cache_creation_input_tokens"] = draw(value)  # LiteLLM's name for an Anthropic model's
    for key in ("completion_tokens_details", "output_tokens_details", "output_token_details"):
        if draw(st.integers(0, 2)) == 0:
            out[key] = draw(details(OUT_KEYS))
    if draw(st.integers(0, 9)) == 0:
        out["server_side_tool_usage_details"] = draw(st.one_of(details(("web_search_calls",)), st.none()))
    if draw(st.booleans()) and isinstance(out.get("completion_tokens"), int):
        # reasoning outside completion tokens (xAI) is told by the total
        reasoning = draw(good)
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        prompt = out.get("prompt_tokens")
        if isinstance(prompt, int) and draw(st.booleans()):
            out["total_tokens"] = prompt + out["completion_tokens"] + reasoning
    return out


annotation = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["url_citation", "file_citation"])}),
    st.sampled_from([None, "x", 3]),
)
message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.just("assistant")},
        optional={"annotations": st.one_of(st.lists(annotation, max_size=3), st.none(), st.just("x"))},
    ),
    st.sampled_from([None, "x"]),
)
choice = st.one_of(st.fixed_dictionaries({}, optional={"message": message}), st.sampled_from([None, 1]))


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "chat.completion"}
    if draw(st.integers(0, 9)):
        body["usage"] = draw(openai_usages())
    elif draw(st.booleans()):
        body["usage"] = draw(st.sampled_from([None, 3, "x"]))
    if draw(st.integers(0, 5)):
        body["choices"] = draw(st.one_of(st.lists(choice, max_size=3), st.sampled_from([None, "x"])))
    return body


@st.composite
def anthropic_bodies(draw: st.DrawFn) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        _maybe(draw, key, value, usage)
    if draw(st.booleans()):
        usage["cache_creation"] = draw(details(("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")))
    if draw(st.integers(0, 4)) == 0:
        usage["server_tool_use"] = draw(details(("web_search_requests",)))
    body: dict[str, Any] = {"type": "message"}
    if draw(st.integers(0, 9)):
        body["usage"] = usage if draw(st.integers(0, 9)) else draw(st.sampled_from([None, 3]))
    return body


@contextmanager
def _general_path_only() -> Iterator[None]:
    with (
        patch.object(openai_usage, "_plain_chat_usage", lambda *a: None),
        patch.object(openai_usage, "_plain_token_usage", lambda *a: None),
        patch.object(anthropic_usage, "_plain_usage", lambda *a: None),
    ):
        yield


def _outcome(extract: Callable[[Any], Usage], payload: Any) -> Usage | str:
    try:
        return extract(payload)
    except UsageError as exc:
        return f"UsageError: {exc}"


def _same(extract: Callable[[Any], Usage], payload: dict[str, Any]) -> None:
    plain = _outcome(extract, payload)
    with _general_path_only():
        general = _outcome(extract, payload)
    assert plain == general, repr(payload)


@settings(max_examples=1500, deadline=None)
@given(chat_bodies())
def test_chat_bodies_read_as_the_general_path_reads_them(body: dict[str, Any]) -> None:
    _same(from_openai_chat, body)
    _same(from_openai_completion, body)


@settings(max_examples=1000, deadline=None)
@given(openai_usages())
def test_usage_objects_read_as_the_general_path_reads_them(usage: dict[str, Any]) -> None:
    _same(openai_token_usage, usage)
    _same(lambda u: openai_token_usage(u, path="chunk.usage"), usage)


@settings(max_examples=1000, deadline=None)
@given(anthropic_bodies())
def test_anthropic_messages_read_as_the_general_path_reads_them(body: dict[str, Any]) -> None:
    _same(from_anthropic_message, body)


def test_a_cited_answer_counts_one_web_search_on_the_plain_path() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 4}
    body = {
        "choices": [{"message": {"annotations": [{"type": "url_citation"}]}}],
        "usage": usage,
    }
    assert from_openai_chat(body).web_search_requests == 1
    with _general_path_only():
        assert from_openai_chat(body).web_search_requests == 1


def test_token_usage_equals_the_dataclass_constructor() -> None:
    names = (
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "input_audio_tokens",
        "cache_read_audio_tokens",
        "input_image_tokens",
        "input_video_tokens",
        "output_tokens",
        "reasoning_tokens",
        "output_audio_tokens",
        "output_image_tokens",
        "output_video_tokens",
    )
    counts = [100, 20, 10, 5, 2, 7, 3, 50, 9, 4, 6, 8]
    fast = token_usage(*counts)
    fields: dict[str, Any] = dict(zip(names, counts, strict=True))
    assert fast == Usage(**fields)
    assert repr(fast) == repr(Usage(**fields))


def _general_tier(response: Any) -> str | None:
    """:func:`reported_service_tier` by the general accessors alone (what it did before its
    shortcuts)."""
    tier = service_tier_name(get(response, "service_tier"))
    return tier if tier is not None else service_tier_name(dig(response, "usage", "service_tier"))


_tiers: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["default", "auto", "flex", "priority", "standard", "STANDARD", "standard_only"]),
    st.sampled_from(["weird", "", None, 3, [], {}]),
    st.text(max_size=10),
)


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(st.none(), _tiers).flatmap(
        lambda top: st.one_of(
            st.none(),
            st.sampled_from([3, "x", []]),
            st.dictionaries(st.just("service_tier"), _tiers, max_size=1),
        ).map(lambda usage: {"service_tier": top, "usage": usage})
    ),
    st.sampled_from([(), ("service_tier",), ("usage",), ("service_tier", "usage")]),
)
def test_the_reported_tier_is_read_as_before(body: dict[str, Any], drop: tuple[str, ...]) -> None:
    for key in drop:
        body.pop(key)
    assert reported_service_tier(body) == _general_tier(body), repr(body)

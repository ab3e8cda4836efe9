"""Usage extractor for Anthropic Messages payloads (``/v1/messages``).

Anthropic's ``input_tokens`` *excludes* cache reads and cache writes; :class:`Usage`
counts every prompt token in ``input_tokens``, so the extractor adds them back::

    {"input_tokens": 1000, "cache_creation_input_tokens": 2000,
     "cache_read_input_tokens": 5000, "output_tokens": 300}
    -> Usage(input_tokens=8000, cache_read_tokens=5000, cache_write_tokens=2000,
             output_tokens=300)

Cache writes are split by TTL in ``cache_creation`` (``ephemeral_5m_input_tokens``,
``ephemeral_1h_input_tokens``); the 1-hour part becomes ``cache_write_1h_tokens``.
Server-side web searches are ``server_tool_use.web_search_requests``.
"""

from __future__ import annotations

from spendgate.core.usage._access import check_nesting, count_of, get, optional_count, plain_count
from spendgate.core.usage.model import Usage, UsageError, token_usage

__all__ = ["anthropic_usage", "from_anthropic_message"]

_TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def from_anthropic_message(response_or_usage: object) -> Usage:
    """Usage of an Anthropic message, or of its ``usage`` alone."""
    if response_or_usage.__class__ is dict:  # a parsed body: the usual case
        fast = _plain_usage(response_or_usage.get("usage"))
        if fast is not None:
            return fast
    usage = get(response_or_usage, "usage")
    if usage is None:
        if not any(get(response_or_usage, key) is not None for key in _TOKEN_KEYS):
            raise UsageError("message has no usage" if response_or_usage is not None else "no message given")
        usage = response_or_usage
    elif get(usage, "input_tokens") is None and get(usage, "output_tokens") is None:
        raise UsageError("usage has neither input_tokens nor output_tokens")
    return anthropic_usage(usage)


def anthropic_usage(usage: object, *, path: str = "usage") -> Usage:
    """Normalize an Anthropic ``usage`` object (all fields optional) to :class:`Usage`."""
    uncached = count_of(usage, "input_tokens", path)
    cache_read = count_of(usage, "cache_read_input_tokens", path)
    split = get(usage, "cache_creation")
    write_5m = count_of(split, "ephemeral_5m_input_tokens", f"{path}.cache_creation")
    write_1h = count_of(split, "ephemeral_1h_input_tokens", f"{path}.cache_creation")
    cache_write = optional_count(
        get(usage, "cache_creation_input_tokens"), f"{path}.cache_creation_input_tokens"
    )
    if cache_write is None:
        cache_write = write_5m + write_1h
    result = Usage(
        input_tokens=uncached + cache_read + cache_write,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
        output_tokens=count_of(usage, "output_tokens", path),
        web_search_requests=count_of(
            get(usage, "server_tool_use"), "web_search_requests", f"{path}.server_tool_use"
        ),
    )
    return check_nesting(result, path)


def _plain_usage(usage: object) -> Usage | None:
    """:func:`anthropic_usage` of a message's plain ``usage`` dict (dicts and non-negative
    ints, as parsed from a body), read without the general machinery; None for any other
    shape or value, which the general path then reads (and refuses, naming the field)."""
    if usage.__class__ is not dict:
        return None
    get_ = usage.get
    uncached, output = get_("input_tokens"), get_("output_tokens")
    if uncached is None and output is None:
        return None
    split = get_("cache_creation")
    if split is None:
        write_5m = write_1h = 0
    elif split.__class__ is dict:
        write_5m = plain_count(split.get("ephemeral_5m_input_tokens"))
        write_1h = plain_count(split.get("ephemeral_1h_input_tokens"))
    else:
        return None
    tools = get_("server_tool_use")
    if tools is None:
        searches = 0
    elif tools.__class__ is dict:
        searches = plain_count(tools.get("web_search_requests"))
    else:
        return None
    cache_write_value = get_("cache_creation_input_tokens")
    cache_write = plain_count(cache_write_value)
    counts = (plain_count(uncached), plain_count(get_("cache_read_input_tokens")), plain_count(output))
    if min(*counts, cache_write, write_5m, write_1h, searches) < 0:
        return None
    if cache_write_value is None:
        cache_write = write_5m + write_1h
    cache_read = counts[1]
    result = token_usage(
        counts[0] + cache_read + cache_write, cache_read, cache_write, 0, 0, 0, 0, counts[2], 0, 0, 0, 0
    )
    result.cache_write_1h_tokens = write_1h
    result.web_search_requests = searches
    return check_nesting(result, "usage")

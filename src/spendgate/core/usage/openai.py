"""Usage extractors for OpenAI and OpenAI-compatible payloads.

Each extractor takes the SDK object, the parsed JSON dict, or (for token endpoints) just
the ``usage`` part, and returns a :class:`Usage`. A payload without usage, or with counts
that are negative, not integers, or that break the nesting of :class:`Usage`, raises
:class:`UsageError` naming the field.

OpenAI-compatible servers differ in small ways, read here so pricing never sees them:

* DeepSeek reports cache hits as ``prompt_cache_hit_tokens`` (Moonshot as a top-level
  ``cached_tokens``); both are read when ``prompt_tokens_details.cached_tokens`` is absent.
* xAI reports ``completion_tokens`` *without* reasoning tokens (its ``total_tokens`` is
  prompt + completion + reasoning). When ``total_tokens`` shows that, or when reasoning
  exceeds completion, reasoning is added to ``output_tokens`` so ``reasoning ⊂ output``
  holds. xAI's ``server_side_tool_usage_details.web_search_calls`` is the web-search count.
* The Responses and Realtime APIs name the fields ``input_tokens`` / ``output_tokens`` /
  ``input_tokens_details`` (or ``input_token_details``); every token extractor accepts
  both naming schemes.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from spendgate.core.usage._access import (
    check_nesting,
    count,
    count_of,
    first,
    get,
    items,
    optional_count,
    plain_count,
    seconds,
    text,
)
from spendgate.core.usage.model import Usage, UsageError, token_usage

__all__ = [
    "chat_usage",
    "from_openai_chat",
    "from_openai_completion",
    "from_openai_embedding",
    "from_openai_image",
    "from_openai_responses",
    "from_openai_speech",
    "from_openai_transcription",
    "has_url_citation",
    "openai_token_usage",
    "responses_usage",
]

_TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens")


def from_openai_chat(response_or_usage: object) -> Usage:
    """Usage of a chat completion (``/v1/chat/completions``), or of its ``usage`` alone.

    A response whose messages carry ``url_citation`` annotations (search-preview models)
    counts one web search, as OpenAI bills it, unless the usage reports a count.
    """
    if response_or_usage.__class__ is dict:  # a parsed body: the usual case
        fast = _plain_chat_usage(response_or_usage)
        if fast is not None:
            return fast
    response, usage = _split(response_or_usage, "chat completion")
    choices = items(get(response, "choices"), "choices")
    cited = any(has_url_citation(get(get(choice, "message"), "annotations")) for choice in choices)
    return chat_usage(usage, url_cited=cited)


def chat_usage(usage: object, *, url_cited: bool = False) -> Usage:
    """Usage of a chat ``usage`` object; ``url_cited``: the answer cited web results."""
    result = openai_token_usage(usage)
    if url_cited and _xai_web_searches(usage) is None:
        result = result.with_(web_search_requests=1)
    return result


def from_openai_completion(response_or_usage: object) -> Usage:
    """Usage of a legacy text completion (``/v1/completions``), or of its ``usage`` alone."""
    _, usage = _split(response_or_usage, "completion")
    return openai_token_usage(usage)


def from_openai_embedding(response_or_usage: object) -> Usage:
    """Usage of an embeddings response: ``prompt_tokens`` (else ``total_tokens``), no output."""
    _, usage = _split(response_or_usage, "embedding")
    name, value = first(usage, "prompt_tokens", "input_tokens", "total_tokens")
    if value is None:
        raise UsageError("embedding usage has neither prompt_tokens nor total_tokens")
    return Usage(input_tokens=count(value, f"usage.{name}"))


def from_openai_responses(response_or_usage: object) -> Usage:
    """Usage of a Responses API response (``/v1/responses``), or of its ``usage`` alone.

    Web searches are the number of ``web_search_call`` output items.
    """
    response, usage = _split(response_or_usage, "response")
    return responses_usage(usage, items(get(response, "output"), "output"))


def responses_usage(usage: object, output: Sequence[object] = ()) -> Usage:
    """Usage of a Responses API ``usage`` object, with web searches counted from ``output``."""
    result = openai_token_usage(usage)
    if _xai_web_searches(usage) is None:
        searches = sum(1 for item in output if get(item, "type") == "web_search_call")
        if searches:
            result = result.with_(web_search_requests=searches)
    return result


def from_openai_image(
    response: object,
    *,
    n: int | None = None,
    size: str | None = None,
    quality: str | None = None,
) -> Usage:
    """Usage of an image generation or edit (``/v1/images/*``).

    ``images`` is the number of images returned (``len(data)``), else ``n``. Size and
    quality come from the response when it says (gpt-image-1 does), else from the
    arguments of the request. Token-priced models (gpt-image-1) also report token usage:
    its text and image input tokens, and output tokens that are all image tokens unless
    ``output_tokens_details`` says otherwise.
    """
    data = get(response, "data")
    images = len(items(data, "data")) if data is not None else count(n, "n")
    image_size = text(get(response, "size"), "size") or text(size, "size")
    image_quality = text(get(response, "quality"), "quality") or text(quality, "quality")
    usage = get(response, "usage")
    if usage is None:
        return Usage(images=images, image_size=image_size, image_quality=image_quality)
    input_details = get(usage, "input_tokens_details")
    output_tokens = count_of(usage, "output_tokens", "usage")
    output_details = get(usage, "output_tokens_details")
    if output_details is None:
        output_image_tokens = output_tokens  # gpt-image-1: every output token is an image token
    else:
        output_image_tokens = count_of(output_details, "image_tokens", "usage.output_tokens_details")
    result = Usage(
        input_tokens=count_of(usage, "input_tokens", "usage"),
        cache_read_tokens=count_of(input_details, "cached_tokens", "usage.input_tokens_details"),
        input_image_tokens=count_of(input_details, "image_tokens", "usage.input_tokens_details"),
        output_tokens=output_tokens,
        output_image_tokens=output_image_tokens,
        images=images,
        image_size=image_size,
        image_quality=image_quality,
    )
    return check_nesting(result, "image usage")


def from_openai_transcription(
    response: object = None, *, duration_seconds: Decimal | int | float | None = None
) -> Usage:
    """Usage of a transcription or translation (``/v1/audio/transcriptions``).

    Seconds come from, in order: ``usage.seconds`` (``{"type": "duration"}`` usage), the
    ``duration`` of a ``verbose_json`` response, or ``duration_seconds`` (e.g. measured from
    the uploaded file). Token-priced models (gpt-4o-transcribe) report ``{"type": "tokens",
    "input_tokens", "input_token_details": {"audio_tokens", "text_tokens"},
    "output_tokens"}``. A plain-text response carries nothing: pass ``duration_seconds``.
    """
    usage = get(response, "usage")
    duration = seconds(get(usage, "seconds"), "usage.seconds")
    if duration is None:
        duration = seconds(get(response, "duration"), "duration")
    if duration is None:
        duration = seconds(duration_seconds, "duration_seconds")
    has_tokens = any(get(usage, key) is not None for key in ("input_tokens", "output_tokens"))
    if duration is None and not has_tokens:
        raise UsageError("transcription has neither usage nor a duration")
    result = openai_token_usage(usage) if has_tokens else Usage()
    return result.with_(seconds=duration) if duration is not None else result


def from_openai_speech(input_text: str | int) -> Usage:
    """Usage of text-to-speech (``/v1/audio/speech``): the input's characters.

    Pass the ``input`` text of the request, or its character count.
    """
    if isinstance(input_text, str):
        return Usage(input_characters=len(input_text))
    return Usage(input_characters=count(input_text, "input_characters"))


def openai_token_usage(usage: object, *, path: str = "usage") -> Usage:
    """A :class:`Usage` from an OpenAI-style ``usage`` object (either naming scheme)."""
    if usage.__class__ is dict:
        fast = _plain_token_usage(usage, path)
        if fast is not None:
            return fast
    input_name, prompt = first(usage, "prompt_tokens", "input_tokens")
    output_name, completion = first(usage, "completion_tokens", "output_tokens")
    if prompt is None and completion is None:
        raise UsageError(f"{path} has neither prompt_tokens nor completion_tokens")
    input_tokens = count(prompt, f"{path}.{input_name}")
    output_tokens = count(completion, f"{path}.{output_name}")

    in_name, in_details = first(usage, "prompt_tokens_details", "input_tokens_details", "input_token_details")
    in_path = f"{path}.{in_name}"
    cached = optional_count(get(in_details, "cached_tokens"), f"{in_path}.cached_tokens")
    if cached is None:
        name, value = first(usage, "prompt_cache_hit_tokens", "cached_tokens")
        cached = count(value, f"{path}.{name}")
    out_name, out_details = first(
        usage, "completion_tokens_details", "output_tokens_details", "output_token_details"
    )
    out_path = f"{path}.{out_name}"
    reasoning = count_of(out_details, "reasoning_tokens", out_path)
    if reasoning and _reasoning_is_extra(usage, path, input_tokens, output_tokens, reasoning):
        output_tokens += reasoning

    # Cache writes: ours (``cache_write_tokens``), else LiteLLM's names for an Anthropic
    # model's (``prompt_tokens_details.cache_creation_tokens``, ``cache_creation_input_tokens``);
    # the 1-hour ones in LiteLLM's ``cache_creation_token_details``.
    writes_name, writes = first(in_details, "cache_write_tokens", "cache_creation_tokens")
    writes_path = f"{in_path}.{writes_name}"
    if writes is None:
        writes_name, writes = "cache_creation_input_tokens", get(usage, "cache_creation_input_tokens")
        writes_path = f"{path}.{writes_name}"
    ttl_path = f"{in_path}.cache_creation_token_details"
    result = Usage(
        input_tokens=input_tokens,
        cache_read_tokens=cached,
        cache_write_tokens=count(writes, writes_path),
        cache_write_1h_tokens=count_of(
            get(in_details, "cache_creation_token_details"), "ephemeral_1h_input_tokens", ttl_path
        ),
        input_audio_tokens=count_of(in_details, "audio_tokens", in_path),
        cache_read_audio_tokens=count_of(
            get(in_details, "cached_tokens_details"), "audio_tokens", f"{in_path}.cached_tokens_details"
        ),
        input_image_tokens=count_of(in_details, "image_tokens", in_path),
        input_video_tokens=count_of(in_details, "video_tokens", in_path),
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        output_audio_tokens=count_of(out_details, "audio_tokens", out_path),
        output_image_tokens=count_of(out_details, "image_tokens", out_path),
        web_search_requests=_xai_web_searches(usage, path) or 0,
    )
    return check_nesting(result, path)


# -- the usual shapes, read without the general machinery ---------------------------------------
#
# A parsed body (dicts, lists, non-negative ints) is what the gateway and the SDK meter on
# every call. The functions below read exactly what the general path reads, in the same
# order of precedence, and return None at the first value of any other shape (a float, a
# negative count, an SDK object, xAI's tool details …): the general path then reads the
# whole payload again and decides (its result, or the UsageError naming the field). So the
# answer is the general path's answer, with a fraction of its function calls.


_NO_DETAILS: dict[str, object] = {}
_REFUSED: dict[str, object] = {}


def _plain_details(usage: dict[str, object], *names: str) -> dict[str, object]:
    """``first(usage, *names)``'s value when it is a dict, ``_NO_DETAILS`` when absent,
    ``_REFUSED`` (by identity) for anything else."""
    for name in names:
        value = usage.get(name)
        if value is not None:
            return value if value.__class__ is dict else _REFUSED
    return _NO_DETAILS


def _plain_token_usage(usage: dict[str, object], path: str = "usage") -> Usage | None:
    """:func:`openai_token_usage` of a plain ``usage`` dict, or None (see above)."""
    prompt = usage.get("prompt_tokens")
    if prompt is None:
        prompt = usage.get("input_tokens")
    completion = usage.get("completion_tokens")
    if completion is None:
        completion = usage.get("output_tokens")
    if prompt is None and completion is None:
        return None
    if "server_side_tool_usage_details" in usage:
        return None
    in_details = _plain_details(usage, "prompt_tokens_details", "input_tokens_details", "input_token_details")
    out_details = _plain_details(
        usage, "completion_tokens_details", "output_tokens_details", "output_token_details"
    )
    if in_details is _REFUSED or out_details is _REFUSED:
        return None
    ind, outd = in_details, out_details
    if (
        "cache_creation_input_tokens" in usage
        or "cache_creation_tokens" in ind
        or "cache_creation_token_details" in ind
    ):
        return None  # LiteLLM's cache-write names: read by the general path
    cached_value = ind.get("cached_tokens")
    if cached_value is None:
        cached_value = usage.get("prompt_cache_hit_tokens")
        if cached_value is None:
            cached_value = usage.get("cached_tokens")
    cached_audio_details = ind.get("cached_tokens_details")
    if cached_audio_details is None:
        cached_audio = None
    elif cached_audio_details.__class__ is dict:
        cached_audio = cached_audio_details.get("audio_tokens")
    else:
        return None
    counts = [
        prompt,
        cached_value,
        ind.get("cache_write_tokens"),
        ind.get("audio_tokens"),
        cached_audio,
        ind.get("image_tokens"),
        ind.get("video_tokens"),
        completion,
        outd.get("reasoning_tokens"),
        outd.get("audio_tokens"),
        outd.get("image_tokens"),
        0,  # (the general path reads no output video count)
    ]
    for i, value in enumerate(counts):  # one loop, not a call per count
        if value is None:
            counts[i] = 0
        elif value.__class__ is not int or value < 0:
            return None
    input_tokens, output_tokens, reasoning = counts[0], counts[7], counts[8]
    if reasoning:
        if plain_count(usage.get("total_tokens")) < 0:
            return None
        if _reasoning_is_extra(usage, path, input_tokens, output_tokens, reasoning):  # type: ignore[arg-type]
            counts[7] = output_tokens + reasoning  # type: ignore[operator]
    return check_nesting(token_usage(*counts), path)  # type: ignore[arg-type]


def _plain_chat_usage(response: dict[str, object]) -> Usage | None:
    """:func:`from_openai_chat` of a parsed chat completion, or None (see above)."""
    usage = response.get("usage")
    if usage.__class__ is not dict:
        return None
    choices = response.get("choices")
    cited = False
    if choices is not None:
        if choices.__class__ is not list:
            return None
        for choice in choices:
            if choice.__class__ is not dict:
                return None
            message = choice.get("message")
            if message is None:
                continue
            if message.__class__ is not dict:
                return None
            annotations = message.get("annotations")
            if annotations is None:
                continue
            if annotations.__class__ is not list:
                return None
            for annotation in annotations:
                if annotation.__class__ is not dict:
                    return None
                if annotation.get("type") == "url_citation":
                    cited = True
            if cited:
                break
    result = _plain_token_usage(usage)
    if result is None:
        return None
    if cited:  # (no xAI tool details: the plain path refused them)
        result = result.with_(web_search_requests=1)
    return result


def _split(response_or_usage: object, what: str) -> tuple[object, object]:
    """(response or None, usage) of what the caller passed."""
    usage = get(response_or_usage, "usage")
    if usage is not None:
        return response_or_usage, usage
    if any(get(response_or_usage, key) is not None for key in _TOKEN_KEYS):
        return None, response_or_usage
    if response_or_usage is None:
        raise UsageError(f"no {what} given")
    raise UsageError(f"{what} has no usage")


def _reasoning_is_extra(usage: object, path: str, prompt: int, completion: int, reasoning: int) -> bool:
    """True when the provider counts reasoning outside completion tokens (xAI)."""
    total = optional_count(get(usage, "total_tokens"), f"{path}.total_tokens")
    if total is not None and total != prompt + completion:
        return total == prompt + completion + reasoning
    return reasoning > completion


def _xai_web_searches(usage: object, path: str = "usage") -> int | None:
    details = get(usage, "server_side_tool_usage_details")
    if details is None:
        return None
    return optional_count(
        get(details, "web_search_calls"), f"{path}.server_side_tool_usage_details.web_search_calls"
    )


def has_url_citation(annotations: object) -> bool:
    """True when a list of annotations holds a ``url_citation`` (a web search was made)."""
    return any(get(a, "type") == "url_citation" for a in items(annotations, "annotations"))

"""The normalized :class:`Usage` of one billable call.

Token buckets nest; the nesting is the whole point of the model, so it is spelled out:

* ``input_tokens`` counts **every** prompt token, OpenAI style: uncached text, cache reads,
  cache writes, audio, image and video input.
* ``cache_read_tokens`` ⊂ ``input_tokens``; ``cache_read_audio_tokens`` ⊂ both
  ``cache_read_tokens`` and ``input_audio_tokens``.
* ``cache_write_tokens`` ⊂ ``input_tokens`` (all TTLs); ``cache_write_1h_tokens`` ⊂
  ``cache_write_tokens`` (the rest are 5-minute writes).
* ``input_audio_tokens``, ``input_image_tokens``, ``input_video_tokens`` ⊂ ``input_tokens``.
* ``output_tokens`` counts every generated token; ``reasoning_tokens``,
  ``output_audio_tokens``, ``output_image_tokens``, ``output_video_tokens`` ⊂ it.

Anthropic reports ``input_tokens`` *without* cache reads and writes; its extractor adds
them, so the same call always has the same ``Usage`` whichever provider served it.

Counts for non-token pricing sit beside the tokens: images generated, input images,
seconds of audio or video, characters, queries and web-search calls.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal

from spendgate.errors import UsageError

__all__ = ["MAX_COUNT", "MAX_SECONDS", "Usage", "UsageError", "token_usage"]

MAX_COUNT = (1 << 40) - 1
"""The largest count a usage may carry (about 1.1 trillion tokens, images, characters …):
far above any real call, and low enough that a cost stays a 64-bit integer of nano-USD in
the counters and the ledger (a broken upstream's ``1e300`` or ``10**30`` is refused here,
not carried into money)."""
MAX_SECONDS = 10**9
"""The largest number of seconds a usage may carry (about 31 years of audio)."""

_ZERO = Decimal(0)


@dataclass(slots=True, kw_only=True)
class Usage:
    """Token and unit counts of one call. All counts are non-negative integers.

    Treat a Usage as a value: derive a changed copy with :meth:`with_`. (It is not a
    frozen dataclass only because frozen ``__init__`` is 5x slower, and a Usage is built
    on every request.)
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    cache_read_audio_tokens: int = 0
    input_image_tokens: int = 0
    input_video_tokens: int = 0

    output_tokens: int = 0
    reasoning_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0
    output_video_tokens: int = 0

    images: int = 0
    """Images generated (priced per image)."""
    input_images: int = 0
    """Images sent as input to a model priced per input image."""
    image_size: str | None = None
    """Size of generated images, e.g. ``"1024x1024"``."""
    image_quality: str | None = None
    """Quality of generated images, e.g. ``"standard"``, ``"hd"``, ``"high"``."""
    seconds: Decimal = _ZERO
    """Seconds of audio (transcription) or video, or of wall-clock for per-second models."""
    input_characters: int = 0
    output_characters: int = 0
    queries: int = 0
    """Search or rerank queries."""
    web_search_requests: int = 0
    """Built-in web-search calls the model made."""
    search_context_size: str | None = None
    """``low`` | ``medium`` | ``high``: the web-search context size requested."""

    def __post_init__(self) -> None:
        # One expression that is cheap when everything is fine (a Usage is built per request):
        # ``|`` raises TypeError for anything but ints (floats, Decimals, strings, None), the OR
        # of ints is negative exactly when one of them is, and its class is int unless every
        # operand is a bool or an int-like type. Anything odd takes the field-by-field check,
        # which names the field.
        try:
            bits = (
                self.input_tokens
                | self.cache_read_tokens
                | self.cache_write_tokens
                | self.cache_write_1h_tokens
                | self.input_audio_tokens
                | self.cache_read_audio_tokens
                | self.input_image_tokens
                | self.input_video_tokens
                | self.output_tokens
                | self.reasoning_tokens
                | self.output_audio_tokens
                | self.output_image_tokens
                | self.output_video_tokens
                | self.images
                | self.input_images
                | self.input_characters
                | self.output_characters
                | self.queries
                | self.web_search_requests
            )
            ok = bits.__class__ is int and 0 <= bits <= MAX_COUNT
        except TypeError:
            ok = False
        if not ok:
            for name in _INT_FIELDS:
                _check_count(name, getattr(self, name))
        if self.seconds.__class__ is not Decimal:
            self.seconds = _to_decimal(self.seconds)
        if self.seconds and (not self.seconds.is_finite() or not 0 <= self.seconds <= MAX_SECONDS):
            raise UsageError(
                f"usage field seconds must be a finite number from 0 to {MAX_SECONDS}, got {self.seconds}"
            )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def is_empty(self) -> bool:
        """True when the call used nothing billable at all."""
        return all(not getattr(self, f.name) for f in fields(self) if f.name not in _DESCRIPTIVE)

    def __add__(self, other: Usage) -> Usage:
        """Sum two usages (batches, retries). Descriptive fields keep the first value set."""
        if not isinstance(other, Usage):
            return NotImplemented
        values: dict[str, object] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = (a or b) if f.name in _DESCRIPTIVE else a + b
        return Usage(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Usage:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


_DESCRIPTIVE = frozenset({"image_size", "image_quality", "search_context_size"})
_INT_FIELDS = tuple(f.name for f in fields(Usage) if f.type == "int")


def _check_count(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"usage field {name} must be an integer, got {value!r}")
    if value < 0:
        raise UsageError(f"usage field {name} must not be negative, got {value}")
    if value > MAX_COUNT:
        raise UsageError(f"usage field {name} is out of range (at most {MAX_COUNT}), got {value}")


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise UsageError(f"usage field seconds must be a number, got {value!r}")
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int | str):
        try:
            return Decimal(value)
        except ArithmeticError:
            pass
    raise UsageError(f"usage field seconds must be a number, got {value!r}")


_new = object.__new__


def token_usage(
    input_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    input_audio_tokens: int,
    cache_read_audio_tokens: int,
    input_image_tokens: int,
    input_video_tokens: int,
    output_tokens: int,
    reasoning_tokens: int,
    output_audio_tokens: int,
    output_image_tokens: int,
    output_video_tokens: int,
) -> Usage:
    """A token :class:`Usage` (every other field at its default) from counts the caller has
    already checked are non-negative ints: ``Usage(...)`` without the keyword parsing and
    the re-validation of ``__init__`` (an extractor builds one per call). Equal, field for
    field, to the dataclass constructor (tested)."""
    u: Usage = _new(Usage)
    u.input_tokens = input_tokens
    u.cache_read_tokens = cache_read_tokens
    u.cache_write_tokens = cache_write_tokens
    u.input_audio_tokens = input_audio_tokens
    u.cache_read_audio_tokens = cache_read_audio_tokens
    u.input_image_tokens = input_image_tokens
    u.input_video_tokens = input_video_tokens
    u.output_tokens = output_tokens
    u.reasoning_tokens = reasoning_tokens
    u.output_audio_tokens = output_audio_tokens
    u.output_image_tokens = output_image_tokens
    u.output_video_tokens = output_video_tokens
    u.cache_write_1h_tokens = u.images = u.input_images = 0
    u.input_characters = u.output_characters = u.queries = u.web_search_requests = 0
    u.image_size = u.image_quality = u.search_context_size = None
    u.seconds = _ZERO
    return u

"""The mock's OpenAI media routes: embeddings (deterministic vectors), image generation
(gpt-image-* token usage, or per-image models) and audio (transcriptions billed by duration
or tokens, speech by characters). No I/O: the batch runner reuses the embeddings payload.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from typing import Any

from spendgate.providers.mock._http import MockHTTPError, Reply, json_reply, new_id, now
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.generation import read_model, read_positive_int
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.tokens import count_tokens, generate_text, input_tokens

__all__ = ["audio_speech", "audio_transcription", "embeddings", "embeddings_payload", "image_generation"]

# ---------------------------------------------------------------------------- embeddings


def _vector(text: str, dimensions: int) -> list[float]:
    # Multiples of 1/1024, exact in float32, so the base64 and float encodings agree.
    seed = zlib.crc32(text.encode()) | 1
    return [(((seed * (j + 1) * 2654435761) >> 7) % 1024) / 1024 - 0.5 for j in range(dimensions)]


def embeddings_payload(body: dict[str, Any], controls: Controls, options: MockOptions) -> dict[str, Any]:
    """A ``list`` of embeddings; vectors are deterministic in the input text."""
    model = read_model(body)
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        inputs: list[Any] = [value]
    elif isinstance(value, list) and value:
        inputs = value
    else:
        raise MockHTTPError(400, "input must be a string, an array of strings or of tokens", param="input")
    dimensions = read_positive_int(body, "dimensions", options.embedding_dimensions, maximum=8192)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(item if isinstance(item, str) else repr(item), dimensions)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(input_tokens(item) for item in inputs)
    payload: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not controls.no_usage:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return payload


def embeddings(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/embeddings``."""
    payload = embeddings_payload(body, controls, options)
    usage = payload.get("usage")
    return json_reply(payload, input_tokens=usage["prompt_tokens"] if usage else 0)


# ---------------------------------------------------------------------------- images

# gpt-image-1 output tokens per image, by quality and size (OpenAI's published table).
_IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
# A 1×1 transparent PNG.
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def image_generation(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/images/generations``: ``n`` images; gpt-image-* models report token usage."""
    model = read_model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise MockHTTPError(400, "prompt must be a string", param="prompt")
    n = read_positive_int(body, "n", 1, maximum=10)
    size = body.get("size") or "auto"
    quality = body.get("quality") or "auto"
    created = now()
    if model.startswith(("gpt-image", "chatgpt-image")):
        tier = quality if quality in _IMAGE_TOKENS else "medium"
        per_image = _IMAGE_TOKENS[tier].get(size, _IMAGE_TOKENS[tier]["1024x1024"])
        text_tokens = count_tokens(prompt)
        output = per_image * n
        payload: dict[str, Any] = {
            "created": created,
            "background": body.get("background") or "opaque",
            "data": [{"b64_json": _PNG} for _ in range(n)],
            "output_format": body.get("output_format") or "png",
            "quality": tier,
            "size": size if size != "auto" else "1024x1024",
        }
        if controls.no_usage:
            return json_reply(payload)
        payload["usage"] = {
            "input_tokens": text_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
            "output_tokens": output,
            "total_tokens": text_tokens + output,
        }
        return json_reply(payload, input_tokens=text_tokens, output_tokens=output)
    if body.get("response_format") == "b64_json":
        data = [{"b64_json": _PNG, "revised_prompt": prompt} for _ in range(n)]
    else:
        data = [
            {"url": f"https://mock.invalid/images/{new_id('img_')}.png", "revised_prompt": prompt}
            for _ in range(n)
        ]
    return json_reply({"created": created, "data": data})


# ---------------------------------------------------------------------------- audio

_AUDIO_BYTES_PER_SECOND = 32_000  # 16 kHz, 16-bit mono PCM
_AUDIO_TOKENS_PER_SECOND = 10
_SPEECH_BYTES_PER_CHARACTER = 32
_SPEECH_TYPES = {
    "mp3": b"audio/mpeg",
    "opus": b"audio/opus",
    "aac": b"audio/aac",
    "flac": b"audio/flac",
    "wav": b"audio/wav",
    "pcm": b"audio/pcm",
}


def audio_transcription(form: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/audio/transcriptions`` (multipart): text plus duration (or token) usage.

    The duration is ``x-mock-audio-seconds``, else ``ceil(file bytes / 32000)`` (16 kHz 16-bit
    mono), at least 1. ``gpt-4o*-transcribe`` models report tokens instead: 10 audio tokens
    per second plus the prompt's text tokens in, the text's tokens out.
    """
    model = form.get("model")
    if not isinstance(model, str) or not model:
        raise MockHTTPError(400, "you must provide a model parameter", param="model")
    upload = form.get("file")
    if not isinstance(upload, bytes):
        raise MockHTTPError(400, "you must upload a file", param="file")
    if controls.audio_seconds is not None:
        seconds: float = controls.audio_seconds
    else:
        seconds = max(1, math.ceil(len(upload) / _AUDIO_BYTES_PER_SECOND))
    tokens = (
        controls.completion_tokens
        if controls.completion_tokens is not None
        else options.default_completion_tokens
    )
    text = generate_text(tokens)
    if form.get("response_format") == "text":
        return Reply(text.encode(), content_type=b"text/plain; charset=utf-8")
    payload: dict[str, Any] = {"text": text}
    if form.get("response_format") == "verbose_json":
        payload.update(task="transcribe", language="english", duration=seconds, segments=[])
    if controls.no_usage:
        return json_reply(payload)
    if "transcribe" in model and model.startswith("gpt-"):
        prompt = form.get("prompt")
        text_in = count_tokens(prompt) if isinstance(prompt, str) else 0
        audio_in = math.ceil(seconds * _AUDIO_TOKENS_PER_SECOND)
        payload["usage"] = {
            "type": "tokens",
            "input_tokens": audio_in + text_in,
            "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in},
            "output_tokens": tokens,
            "total_tokens": audio_in + text_in + tokens,
        }
        return json_reply(payload, input_tokens=audio_in + text_in, output_tokens=tokens)
    payload["usage"] = {"type": "duration", "seconds": seconds}
    return json_reply(payload)


def audio_speech(body: dict[str, Any], controls: Controls, options: MockOptions) -> Reply:
    """``POST /v1/audio/speech``: 32 bytes of silence per input character."""
    read_model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise MockHTTPError(400, "input must be a non-empty string", param="input")
    kind = _SPEECH_TYPES.get(str(body.get("response_format") or "mp3"), b"audio/mpeg")
    return Reply(
        bytes(_SPEECH_BYTES_PER_CHARACTER * len(text)),
        content_type=kind,
        headers=[(b"x-mock-characters", str(len(text)).encode())],
    )

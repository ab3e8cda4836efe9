"""Reading a client's request: parse and check its body into a
:class:`~spendgate.providers.base.ClientCall` (400 when it is not JSON, 422 for a bad field).
(``response_text``, the generated text of an answer without usage, lives in
:mod:`spendgate.providers.metering` and is re-exported here).

Pure functions: no I/O, so every rule about what a request may contain is in this one module.
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.gateway.bounds import check_bounds
from spendgate.http.errors import InvalidField, MalformedRequest
from spendgate.providers.base import ClientCall
from spendgate.providers.body_rules import BodyFieldError, check_body
from spendgate.providers.metering import response_text
from spendgate.providers.multipart import form_fields

__all__ = ["parse_call", "response_text"]

_NUMBER_FIELDS = ("temperature", "top_p")


def parse_call(endpoint: str, body: bytes, content_type: str) -> ClientCall:
    """Parse and check a request body: 400 when it is not JSON, 422 for a bad field."""
    if endpoint == "transcriptions":
        fields = form_fields(body, content_type)
        if fields is None:
            raise MalformedRequest("expected a multipart/form-data body with the audio file")
        payload: Any = dict(fields)
    else:
        if not body.strip():
            raise MalformedRequest("request body is empty; expected a JSON object")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise MalformedRequest("request body must be a JSON object")
    model = payload.get("model")
    if model is None:
        raise InvalidField("missing required field 'model'", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidField("'model' must be a non-empty string", param="model")
    try:
        check_body(endpoint, payload)
    except BodyFieldError as exc:
        raise InvalidField(exc.message, param=exc.field, code=exc.code) from None
    check_bounds(payload)
    for name in _NUMBER_FIELDS:
        value = payload.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise InvalidField(f"{name!r} must be a number", param=name)
    stream = payload.get("stream", False)
    if endpoint == "transcriptions":
        stream = False
    elif stream is not None and not isinstance(stream, bool):
        raise InvalidField("'stream' must be a boolean", param="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidField("'stream_options' must be an object", param="stream_options")
    return ClientCall(
        endpoint=endpoint,
        model=model,
        payload=payload,
        raw=body,
        content_type=content_type or "application/json",
        stream=bool(stream),
        include_usage=bool(options and options.get("include_usage")),
    )

"""Reading one line of a batch's output: did the request succeed, which model answered,
and what did it use.

The two providers write their results differently, and this module is the one place that
knows both shapes (``docs/batches.md``; reference: standards §1):

* **OpenAI** output and error files, one line per request::

      {"id": "batch_req_…", "custom_id": "…",
       "response": {"status_code": 200, "request_id": "req_…", "body": {… "usage": …}},
       "error": null}

  The body is a chat completion, a text completion, an embeddings list or a Responses API
  response; :func:`~spendgate.core.usage.detect.usage_from_response` tells them apart. A
  line whose ``error`` is set, or whose ``status_code`` is 400 or more, *failed*.

* **Anthropic** message-batch results::

      {"custom_id": "…", "result": {"type": "succeeded", "message": {… "usage": …}}}

  ``errored``, ``canceled`` and ``expired`` results *failed*.

A line that is neither (not an object, no response, a success without usage or without a
model) is *invalid*, with a reason; it is never read as a success worth $0. A reading is
a plain tuple, ``(outcome, model or reason, usage)``: this runs once per line of files of
50,000 lines, so no object is built for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from spendgate.core.usage.anthropic import from_anthropic_message
from spendgate.core.usage.detect import usage_from_response
from spendgate.core.usage.model import Usage
from spendgate.errors import UsageError

__all__ = [
    "FAILED",
    "INVALID",
    "OK",
    "LineReader",
    "OutputApi",
    "Reading",
    "line_reader",
    "read_anthropic_line",
    "read_openai_line",
]

OutputApi = Literal["openai", "anthropic"]
"""Whose output format a file is in."""

OK: Final = 0
"""The request succeeded: the reading is ``(OK, model, usage)``."""
FAILED: Final = 1
"""The request failed at the provider (billed nothing): ``(FAILED, None, None)``."""
INVALID: Final = 2
"""The line could not be read: ``(INVALID, reason, None)``."""

Reading = tuple[int, str | None, Usage | None]
LineReader = Callable[[object, str | None], Reading]
"""Reads one parsed line, given the model to assume when the body names none."""

_FAILED: Final[Reading] = (FAILED, None, None)
_ANTHROPIC_FAILED = frozenset({"errored", "canceled", "expired"})


def read_openai_line(line: object, default_model: str | None) -> Reading:
    """Read one parsed line of an OpenAI batch output or error file."""
    if not isinstance(line, dict):
        return (INVALID, "the line is not a JSON object", None)
    if line.get("error") is not None:
        return _FAILED
    response = line.get("response")
    if not isinstance(response, dict):
        return (INVALID, "response is not an object", None)
    status = response.get("status_code")
    if type(status) is not int:  # a bool is not a status either
        return (INVALID, "response.status_code is not an integer", None)
    if status >= 400:
        return _FAILED
    body = response.get("body")
    if not isinstance(body, dict):
        return (INVALID, "response.body is not an object", None)
    return _succeeded(body, default_model, usage_from_response, "response.body")


def read_anthropic_line(line: object, default_model: str | None) -> Reading:
    """Read one parsed line of an Anthropic message-batch results file."""
    if not isinstance(line, dict):
        return (INVALID, "the line is not a JSON object", None)
    result = line.get("result")
    if not isinstance(result, dict):
        return (INVALID, "result is not an object", None)
    kind = result.get("type")
    if kind == "succeeded":
        message = result.get("message")
        if not isinstance(message, dict):
            return (INVALID, "result.message is not an object", None)
        return _succeeded(message, default_model, from_anthropic_message, "result.message")
    if isinstance(kind, str) and kind in _ANTHROPIC_FAILED:
        return _FAILED
    return (INVALID, f"result.type {repr(kind)[:40]} is not a known result type", None)


def line_reader(api: OutputApi) -> LineReader:
    """The reader of ``api``'s output lines."""
    if api == "openai":
        return read_openai_line
    if api == "anthropic":
        return read_anthropic_line
    raise ValueError(f"api must be 'openai' or 'anthropic', got {api!r}")


def _succeeded(
    body: dict[str, object], default_model: str | None, extract: Callable[[object], Usage], where: str
) -> Reading:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        if default_model is None:
            return (INVALID, f"{where}.model is missing", None)
        model = default_model
    try:
        usage = extract(body)
    except UsageError as exc:
        return (INVALID, f"{where}: {exc}", None)
    return (OK, model, usage)

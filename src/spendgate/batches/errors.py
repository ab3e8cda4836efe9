"""What the batch checks refuse, said without HTTP: a batch's input (an OpenAI input file,
or the ``requests`` of an Anthropic message batch) that cannot be sent, named by line (or
request) and field. The HTTP edge (:mod:`spendgate.http.errors`) renders each as a 400
``invalid_request_error`` with the same message, ``param`` and ``code``.

::

    SpendgateError
    └── BatchError
        └── BatchInputError     a bad line or request: ``line`` (1-based) and ``field``

``param`` says where, in the words of the API the client used:

* an input file: ``"line 7: body.model"`` (``"line 7"`` when the line itself is at fault:
  not JSON, not an object, a blank line between requests);
* an Anthropic ``requests`` list: ``"requests[6].params.model"`` (``"requests[6]"``);
* the input as a whole (empty, too many lines, an unknown endpoint): the field alone,
  ``"file"``, ``"requests"`` or ``"endpoint"``.
"""

from __future__ import annotations

from typing import Literal

from spendgate.errors import SpendgateError

__all__ = ["INVALID_BATCH_INPUT", "INVALID_BATCH_LINE", "WHOLE_ITEM", "BatchError", "BatchInputError"]

INVALID_BATCH_LINE = "invalid_batch_line"
"""The ``code`` of a refusal that names one line (or request)."""
INVALID_BATCH_INPUT = "invalid_batch_input"
"""The ``code`` of a refusal of the input as a whole (empty, too many lines, bad endpoint)."""
WHOLE_ITEM = ""
"""The ``field`` of a refusal of a whole line or request (not JSON, not an object)."""

Source = Literal["file", "requests"]


class BatchError(SpendgateError):
    """Root of the batch checks' refusals; ``param`` names where, ``code`` what."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BatchInputError(BatchError):
    """A batch input that cannot be sent: ``line`` is the 1-based line of the input file
    (or position in an Anthropic ``requests`` list; None: the input as a whole), ``field``
    the field at fault (``"custom_id"``, ``"method"``, ``"url"``, ``"body"``,
    ``"body.model"``, ``"params.max_tokens"`` …; :data:`WHOLE_ITEM` for the line itself)."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None,
        field: str,
        source: Source = "file",
        code: str | None = None,
    ) -> None:
        self.line = line
        self.field = field
        self.source: Source = source
        where = _where(line, field, source)
        text = message if line is None else f"{_place(line, source)}: {message}"
        super().__init__(
            text,
            param=where,
            code=code if code is not None else (INVALID_BATCH_INPUT if line is None else INVALID_BATCH_LINE),
        )
        self.reason = message
        """The message without its place (the line or request it names)."""


def _place(line: int, source: Source) -> str:
    return f"line {line}" if source == "file" else f"requests[{line - 1}]"


def _where(line: int | None, field: str, source: Source) -> str:
    if line is None:
        return field
    place = _place(line, source)
    if not field:
        return place
    return f"{place}: {field}" if source == "file" else f"{place}.{field}"

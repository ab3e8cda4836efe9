"""A batch's requests, checked before anything reaches a provider, and their worst case.

A batch is one billed operation (issue #12). At creation, every line of its input is
checked and becomes a :class:`BatchRequest`, which carries what the reservation needs: the
prompt estimate, the output cap the line declares and its number of choices.

* :func:`parse_openai_input`: an OpenAI batch input file (JSONL, one
  ``{"custom_id", "method", "url", "body"}`` per line);
* :func:`parse_anthropic_requests`: the ``requests`` of ``POST /v1/messages/batches``
  (``[{"custom_id", "params"}]``).

Both refuse the first bad line with a :class:`~spendgate.batches.errors.BatchInputError`
naming the line (1-based) and the field (a 400 at the HTTP edge). A line must be a JSON
object; ``custom_id`` a non-empty string, unique in the batch (Anthropic: 1 to 64 of
``A-Z a-z 0-9 _ -``); ``method`` ``"POST"``; ``url`` the batch's endpoint; ``body`` (or
``params``) an object whose ``model`` names a model group that exists and the key may use,
the same group on every line. Blank lines may end a file, not separate its lines. A file
holds at most :data:`MAX_FILE_LINES` requests, a message batch
:data:`MAX_MESSAGE_BATCH_REQUESTS` (the providers' limits, reference standards §1).

The body checks are the essentials of the gateway's own (``gateway/parsing.py`` and
``gateway/bounds.py``, which this layer may not import): the prompt field the endpoint
needs and its shape, messages as objects with a role, tools as objects, and the integer
bounds of output caps and choice counts (so a worst case fits a 64-bit counter).

The worst case of a batch (:func:`worst_case_nanos`) is the sum of its lines' worst cases;
:func:`line_worst_case` prices one line where it will be served, at the batch tier: the
prompt estimate at the batch input rate plus (declared output cap, else the model's
catalogue output limit, else a default) × choices at the batch output rate, the
long-context tier the prompt selects included, as ``Deployment.worst_case`` does for a
single call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, Protocol

import orjson

from spendgate.batches.errors import WHOLE_ITEM, BatchInputError, Source
from spendgate.enforcement import estimate
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.providers.body_rules import MAX_CHOICES, MAX_OUTPUT_TOKENS, BodyFieldError, check_body

__all__ = [
    "ENDPOINTS",
    "MAX_CHOICES",
    "MAX_FILE_LINES",
    "MAX_MESSAGE_BATCH_REQUESTS",
    "MAX_OUTPUT_TOKENS",
    "BatchRequest",
    "PricedDeployment",
    "line_worst_case",
    "line_worst_tokens",
    "parse_anthropic_requests",
    "parse_openai_input",
    "worst_case_nanos",
]

ENDPOINTS: Mapping[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
}
"""The endpoints an OpenAI batch can run, each with the kind of body its lines carry."""
MAX_FILE_LINES = 50_000
"""Requests in one OpenAI batch input file (OpenAI's limit)."""
MAX_MESSAGE_BATCH_REQUESTS = 100_000
"""Requests in one Anthropic message batch (Anthropic's limit)."""
_ANTHROPIC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True, eq=False)
class BatchRequest:
    """One checked request of a batch."""

    line: int
    """Its 1-based line in the input file (position in an Anthropic ``requests`` list)."""
    custom_id: str
    model_group: str
    """The model group its ``model`` names (the same on every line of a batch)."""
    body: Mapping[str, Any]
    """The request body (an Anthropic request's ``params``), as sent upstream."""
    prompt_tokens: int
    """The prompt estimate (:func:`~spendgate.providers.base.estimate_prompt_tokens`; a
    Responses ``input`` string counted as the message it is)."""
    max_output: int | None
    """The largest output cap it declares (``max_tokens``, ``max_completion_tokens``,
    ``max_output_tokens``); None when it declares none."""
    choices: int
    """How many completions it makes the upstream generate (``n`` / ``best_of``; at least 1)."""


def parse_openai_input(
    data: bytes,
    *,
    endpoint: str,
    may_use: Callable[[str], bool],
    groups: Callable[[str], bool],
    max_lines: int = MAX_FILE_LINES,
) -> list[BatchRequest]:
    """Check an OpenAI batch input file for a batch on ``endpoint`` (e.g.
    ``"/v1/chat/completions"``) and return its requests, in file order.

    ``groups(name)`` says whether a model group exists, ``may_use(name)`` whether the
    creating key may use it.

    Raises:
        BatchInputError: the first bad line (``line``, ``field``), or the file as a whole
            (``line`` None; ``field`` ``"file"``, or ``"endpoint"`` for an endpoint a batch
            cannot run).
    """
    kind = ENDPOINTS.get(endpoint)
    if kind is None:
        raise BatchInputError(
            f"endpoint {endpoint!r} cannot run as a batch; use one of {', '.join(ENDPOINTS)}",
            line=None,
            field="endpoint",
        )
    lines = data.removeprefix(_BOM).split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise BatchInputError("the input file holds no requests", line=None, field="file")
    if len(lines) > max_lines:
        raise BatchInputError(
            f"the input file holds {len(lines)} lines; a batch holds at most {max_lines} requests",
            line=None,
            field="file",
        )
    check = _BatchCheck("file", kind, may_use, groups)
    out: list[BatchRequest] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            check.fail(
                number, WHOLE_ITEM, "a blank line between requests; only the end of a file may be blank"
            )
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            check.fail(number, WHOLE_ITEM, "not valid JSON (each line must be one JSON object)")
        if not isinstance(item, dict):
            check.fail(number, WHOLE_ITEM, "must be a JSON object with custom_id, method, url and body")
        custom_id = check.custom_id(number, item.get("custom_id"))
        if item.get("method") != "POST":
            check.fail(number, "method", "'method' must be \"POST\"")
        if item.get("url") != endpoint:
            check.fail(number, "url", f"'url' must be the batch's endpoint, {endpoint!r}")
        out.append(check.request(number, custom_id, item.get("body"), "body"))
    return out


def parse_anthropic_requests(
    requests: object,
    *,
    may_use: Callable[[str], bool],
    groups: Callable[[str], bool],
    max_requests: int = MAX_MESSAGE_BATCH_REQUESTS,
) -> list[BatchRequest]:
    """Check the ``requests`` of an Anthropic message batch (``[{custom_id, params}]``,
    ``params`` a Messages API body with ``max_tokens``) and return them, in order.

    Raises:
        BatchInputError: the first bad request (``line`` its 1-based position, ``field``
            e.g. ``"params.model"``), or the list as a whole (``line`` None, ``field``
            ``"requests"``).
    """
    if not isinstance(requests, list) or not requests:
        raise BatchInputError(
            "'requests' must be a non-empty list", line=None, field="requests", source="requests"
        )
    if len(requests) > max_requests:
        raise BatchInputError(
            f"'requests' holds {len(requests)} requests; a message batch holds at most {max_requests}",
            line=None,
            field="requests",
            source="requests",
        )
    check = _BatchCheck("requests", "messages", may_use, groups)
    out: list[BatchRequest] = []
    for number, item in enumerate(requests, start=1):
        if not isinstance(item, dict):
            check.fail(number, WHOLE_ITEM, "each request must be an object with custom_id and params")
        custom_id = check.custom_id(number, item.get("custom_id"))
        out.append(check.request(number, custom_id, item.get("params"), "params"))
    return out


class _BatchCheck:
    """The checks of one batch's lines, and what they share: the ids seen, the group."""

    def __init__(
        self, source: Source, kind: str, may_use: Callable[[str], bool], groups: Callable[[str], bool]
    ) -> None:
        self.source: Source = source
        self.kind = kind
        self.may_use = may_use
        self.groups = groups
        self.seen: dict[str, int] = {}
        self.group: tuple[str, int] | None = None
        """The batch's model group and the line that named it first."""

    def fail(self, line: int, field: str, message: str) -> NoReturn:
        raise BatchInputError(message, line=line, field=field, source=self.source)

    def custom_id(self, line: int, value: object) -> str:
        if not isinstance(value, str) or not value:
            self.fail(line, "custom_id", "'custom_id' must be a non-empty string")
        if self.source == "requests" and not _ANTHROPIC_ID.fullmatch(value):
            self.fail(line, "custom_id", "'custom_id' must be 1 to 64 letters, digits, '_' or '-'")
        if "\x00" in value:
            self.fail(line, "custom_id", "'custom_id' must not contain a NUL character (\\u0000)")
        first = self.seen.setdefault(value, line)
        if first != line:
            where = f"line {first}" if self.source == "file" else f"requests[{first - 1}]"
            self.fail(
                line,
                "custom_id",
                f"'custom_id' {value!r} is used twice (first at {where}); each must be unique",
            )
        return value

    def request(self, line: int, custom_id: str, body: object, name: str) -> BatchRequest:
        """Check a line's body (``name``: ``"body"`` or ``"params"``) and build its request."""
        if not isinstance(body, dict):
            self.fail(line, name, f"{name!r} must be a JSON object (the request body)")
        model = self._model(line, body.get("model"), f"{name}.model")
        self._check_body(line, body, name)
        prompt = estimate_prompt_tokens(body, self.kind)
        return BatchRequest(
            line=line,
            custom_id=custom_id,
            model_group=model,
            body=body,
            prompt_tokens=prompt,
            max_output=estimate.declared_max_output(body),
            choices=estimate.declared_choices(body),
        )

    def _model(self, line: int, model: object, field: str) -> str:
        if model is None:
            self.fail(line, field, "missing required field 'model'")
        if not isinstance(model, str) or not model:
            self.fail(line, field, "'model' must be a non-empty string")
        if not self.groups(model):
            self.fail(
                line, field, f"model {model!r} does not exist on this gateway (GET /v1/models lists them)"
            )
        if not self.may_use(model):
            self.fail(line, field, f"this key may not use model {model!r}")
        if self.group is None:
            self.group = (model, line)
        elif self.group[0] != model:
            group, first = self.group
            where = f"line {first}" if self.source == "file" else f"requests[{first - 1}]"
            self.fail(
                line,
                field,
                f"every request of a batch must name one model group: {where} names {group!r}, "
                f"this one {model!r}",
            )
        return model

    def _check_body(self, line: int, body: Mapping[str, Any], name: str) -> None:
        """The body rules a live call of the same kind obeys (:mod:`spendgate.providers.body_rules`)."""
        try:
            check_body(self.kind, body)
        except BodyFieldError as exc:
            self.fail(line, f"{name}.{exc.field}", exc.message)


# -- the worst case ------------------------------------------------------------------------------


class PricedDeployment(estimate.PricedTarget, Protocol):
    """What pricing a line's worst case needs of a deployment
    (``gateway.deployments.Deployment`` is one): a priced target with an output cap."""

    def max_output_tokens(self) -> int | None: ...


def _worst_output(deployment: PricedDeployment, request: BatchRequest, default_output: int) -> int:
    """Output tokens a line can generate: its cap (else the catalogue's, else the default)
    for every choice."""
    cap = request.max_output
    if cap is None:
        cap = deployment.max_output_tokens()
    if cap is None:
        cap = default_output
    return max(0, cap) * request.choices


def line_worst_tokens(deployment: PricedDeployment, request: BatchRequest, default_output: int) -> int:
    """The most tokens a line can use at ``deployment``: its prompt estimate plus its
    worst output (for token limits, such as enqueued batch tokens)."""
    return max(0, request.prompt_tokens) + _worst_output(deployment, request, default_output)


def line_worst_case(
    deployment: PricedDeployment,
    request: BatchRequest,
    default_output: int,
    *,
    at: datetime | None = None,
) -> int:
    """The most a line can cost at ``deployment`` at the batch tier, in nano-USD: the prompt
    estimate at the batch input rate plus (its output cap, else the model's catalogue
    output limit, else ``default_output``) × choices at the larger of the batch output and
    reasoning rates, at the long-context tier the prompt selects; the deployment's discounts
    and margins applied. 0 when the model has no price (it is recorded unpriced)."""
    prompt = max(0, request.prompt_tokens)
    output = _worst_output(deployment, request, default_output)
    return estimate.target_worst_case(deployment, prompt, output, service_tier="batch", at=at)


def worst_case_nanos(requests: Iterable[BatchRequest], worst_case_line: Callable[[BatchRequest], int]) -> int:
    """The worst case of a batch: the sum of ``worst_case_line`` over its requests (each line
    is billed on its own, so the most a batch can cost is the sum of the most each can)."""
    return sum(worst_case_line(request) for request in requests)

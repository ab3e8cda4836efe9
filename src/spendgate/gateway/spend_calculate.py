"""``POST /spend/calculate``: what a request or an answer costs, priced as the gateway prices
it, with nothing sent upstream and nothing recorded.

The body takes one of LiteLLM's two forms:

* ``{"model", "messages"}``: the prompt alone, estimated as the gateway estimates a prompt
  before a call (:func:`~spendgate.providers.base.estimate_prompt_tokens`), no output;
* ``{"completion_response": {...}}`` (``model`` optional; default the response's own): the
  usage of an OpenAI answer (chat, completions, Responses, embeddings, images) or an
  Anthropic message, at the service tier the answer reports.

``model`` may be a model group of the config (priced at its deployment with its own
prices, discounts and margins, as the gateway bills it; with several deployments, at the
dearest: the most the call may cost) or any model of the catalogue (at its list price). A
key may price a model group only if it may call it.

The answer is LiteLLM's ``{"cost": <USD>}`` (null, never a made-up 0, when no price is
known) plus the exact figures: ``cost_nanos``, ``priced``, ``unpriced_reason``, the
deployment and catalogue entry priced, the usage and the breakdown in nano-USD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.core.money import usd_text
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.detect import usage_from_response
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import reported_service_tier
from spendgate.costs import price
from spendgate.gateway.deployments import Deployment, billed_tier
from spendgate.gateway.model_info import ModelDirectory, json_response
from spendgate.gateway.pipeline import Pipeline
from spendgate.http.body import read_body
from spendgate.http.errors import InvalidField, MalformedRequest
from spendgate.providers.base import estimate_prompt_tokens

__all__ = ["SpendCalculator"]


class SpendCalculator:
    """The route's handler (see the module docstring)."""

    def __init__(self, directory: ModelDirectory, pipeline_of: Callable[[], Pipeline]) -> None:
        self.directory = directory
        self._pipeline_of = pipeline_of

    async def calculate(self, request: Request) -> Response:
        pipeline = self._pipeline_of()
        principal = await pipeline.auth.authenticate(request.headers)
        body = await read_body(request, pipeline.max_body_bytes, request.headers.get("content-length"))
        model, usage, tier, estimated = _read(_object(body))
        at = datetime.now(UTC)
        deployment: Deployment | None = None
        if self.directory.group(model):
            priced = [
                (d, d.price(usage, at=at, served_tier=tier))
                for d in self.directory.check_group(principal, model, "model")
            ]
            deployment, breakdown = max(priced, key=lambda p: (p[1].priced, p[1].total_nanos))
        else:
            breakdown = price(model, usage, service_tier=billed_tier(tier), at=at, book=self.directory.book)
        return json_response(_answer(model, deployment, breakdown, estimated=estimated))


def _object(body: bytes) -> Mapping[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest("the request body must be a JSON object")
    return data


def _read(data: Mapping[str, Any]) -> tuple[str, Usage, str | None, bool]:
    """(model, usage, service tier served, estimated) of a body."""
    response = data.get("completion_response")
    model = data.get("model")
    if response is not None:
        if not isinstance(response, dict):
            raise InvalidField("completion_response must be an object", param="completion_response")
        try:
            usage = usage_from_response(response)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidField(
                f"completion_response: no usage can be read from it ({exc})", param="completion_response"
            ) from None
        return (
            _model(model if model is not None else response.get("model")),
            usage,
            reported_service_tier(response),
            False,
        )
    if model is None:
        raise MalformedRequest("either 'model' (with 'messages') or 'completion_response' must be provided")
    messages = data.get("messages")
    if messages is None:
        raise MalformedRequest("'messages' must be provided with 'model'", param="messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InvalidField("messages must be a list of message objects", param="messages")
    prompt = estimate_prompt_tokens({"messages": messages}, "chat")
    return _model(model), Usage(input_tokens=prompt), None, True


def _model(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(
            "model must be a non-empty string (a model group or a catalogue model)", param="model"
        )
    return value


def _answer(
    model: str, deployment: Deployment | None, breakdown: CostBreakdown, *, estimated: bool
) -> dict[str, Any]:
    nanos = breakdown.total_nanos if breakdown.priced else None
    usage = breakdown.usage
    return {
        "cost": None if nanos is None else orjson.Fragment(usd_text(nanos).encode()),
        "cost_nanos": nanos,
        "priced": breakdown.priced,
        "unpriced_reason": breakdown.unpriced_reason,
        "model": model,
        "deployment_id": deployment.id if deployment is not None else None,
        "resolved_model": breakdown.resolved_model,
        "provider": breakdown.provider,
        "service_tier": breakdown.service_tier,
        "catalogue_version": breakdown.catalogue_version,
        "price_source": breakdown.price_source,
        "estimated": estimated,
        "usage": {f.name: getattr(usage, f.name) for f in fields(usage) if getattr(usage, f.name)},
        "breakdown": {k: v for k, v in breakdown.item_nanos().items() if v} if breakdown.priced else {},
    }

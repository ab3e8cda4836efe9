"""Callbacks: LiteLLM's ``success_callback`` / ``failure_callback`` / ``callbacks`` and
``CustomLogger``, fed by the metered transports.

Code that logged LiteLLM calls keeps working with ``litellm`` replaced by ``spendgate``:

* a function in ``success_callback`` (``failure_callback``) is called as
  ``fn(kwargs, completion_response, start_time, end_time)`` after each successful (failed)
  call; a function in ``callbacks`` after both;
* an object in any of the lists gets LiteLLM's ``CustomLogger`` hooks:
  ``log_pre_api_call(model, messages, kwargs)`` before the call is sent,
  ``log_success_event`` / ``log_failure_event`` after a call of a sync client, and
  ``async_log_success_event`` / ``async_log_failure_event`` after a call of an async
  client (as LiteLLM does: sync hooks for sync calls, async hooks for async calls);
* ``kwargs["response_cost"]`` is the cost as a float (None for a model without a price:
  never a made-up 0), ``kwargs["cost_breakdown"]`` the exact
  :class:`~spendgate.core.pricing.breakdown.CostBreakdown`, and
  ``kwargs["standard_logging_object"]`` carries LiteLLM's ``StandardLoggingPayload``
  field names.

A callback that raises is logged and never breaks the call. A coroutine (an ``async def``
function or an ``async_`` hook) runs as a task on the caller's loop, never awaited by the
call; without a running loop (a sync client) it runs on one background loop thread.
:func:`drain` / :func:`adrain` wait for those that are still running (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage

__all__ = [
    "CallRecord",
    "CustomLogger",
    "adrain",
    "callbacks",
    "drain",
    "failure_callback",
    "listening",
    "listening_any",
    "logging_kwargs",
    "notify_end",
    "notify_start",
    "reset",
    "success_callback",
]

log = logging.getLogger("spendgate.sdk")

success_callback: list[Any] = []
"""Called after each successful call (functions or loggers)."""
failure_callback: list[Any] = []
"""Called after each failed call (functions or loggers)."""
callbacks: list[Any] = []
"""Called after every call (loggers; functions are called on success and failure)."""


class CustomLogger:
    """LiteLLM's ``CustomLogger`` hooks; override the ones you need (each does nothing here)."""

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        """Before the call is sent."""

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After a successful call of a sync client."""

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After a failed call of a sync client."""

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After a successful call of an async client (run as a task)."""

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """After a failed call of an async client (run as a task)."""


@dataclass(slots=True)
class CallRecord:
    """What the metered transport knows of one call, for the callbacks."""

    call_type: str
    """The endpoint: ``chat``, ``completions``, ``embeddings``, ``responses``, ``images``,
    ``transcriptions``, ``speech`` or ``messages``."""
    model: str
    provider: str
    api_base: str
    payload: Mapping[str, Any]
    stream: bool
    async_call: bool
    start_time: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    end_user: str | None = None
    tags: list[str] = field(default_factory=list)
    end_time: datetime | None = None
    usage: Usage | None = None
    breakdown: CostBreakdown | None = None
    status: str = "success"
    """``success`` or ``failure`` (LiteLLM's)."""
    outcome: str = "success"
    """How the call ended, as the ledger says it: ``success``, ``partial``, ``cancelled``, ``error``."""
    estimated: bool = False
    response: Any = None
    exception: BaseException | None = None
    _call_id: str | None = field(default=None, repr=False)

    @property
    def call_id(self) -> str:
        """The call's id (a uuid4): the callbacks' ``litellm_call_id`` and the ledger's event
        id. Made when first read (on the calling thread, when the call starts or ends): a
        process with no callback and no ledger never needs one."""
        if self._call_id is None:
            self._call_id = str(uuid.uuid4())
        return self._call_id


def _messages(payload: Mapping[str, Any]) -> Any:
    for key in ("messages", "input", "prompt"):
        if key in payload:
            return payload[key]
    return None


_PROMPT_KEYS = frozenset({"model", "messages", "input", "prompt"})
"""Request fields that are not parameters (``optional_params``, ``model_parameters``)."""


def logging_kwargs(record: CallRecord) -> dict[str, Any]:
    """The ``kwargs`` a callback receives, with LiteLLM's names."""
    breakdown = record.breakdown
    priced = breakdown is not None and breakdown.priced
    total = prompt_cost = completion_cost = None
    if breakdown is not None and priced:
        # The breakdown's own sums, each once: ``total`` is ``subtotal + discount + margin``
        # and ``subtotal`` is ``prompt_cost + completion_cost``, added here in that order.
        prompt_cost, completion_cost = breakdown.prompt_cost, breakdown.completion_cost
        total = prompt_cost + completion_cost + breakdown.discount + breakdown.margin
    cost = float(total) if total is not None else None
    if breakdown is not None and not priced:
        cost_debug: dict[str, Any] | None = {
            "error_message": breakdown.unpriced_reason,
            "model": record.model,
            "custom_llm_provider": record.provider,
        }
    else:
        cost_debug = None
    if record.status == "failure" and record.breakdown is None:
        cost = 0.0  # nothing was billed
    usage = record.usage or Usage()
    end = record.end_time or record.start_time
    started, ended = record.start_time.timestamp(), end.timestamp()
    messages = _messages(record.payload)
    exception = record.exception
    error = None if exception is None else str(exception) or type(exception).__name__
    trace = None if exception is None else "".join(traceback.format_exception(exception))
    parameters = {k: v for k, v in record.payload.items() if k not in _PROMPT_KEYS}
    standard = {
        "id": record.call_id,
        "trace_id": record.call_id,
        "call_type": record.call_type,
        "stream": record.stream,
        "status": record.status,
        "response_cost": cost,
        "response_cost_failure_debug_info": cost_debug,
        "cost_breakdown": None
        if breakdown is None or total is None or prompt_cost is None or completion_cost is None
        else {
            "input_cost": float(prompt_cost),
            "output_cost": float(completion_cost),
            "tool_usage_cost": float(breakdown.tools),
            "total_cost": cost,
            "total_nanos": breakdown.total_nanos,  # to_nano(total), kept by the breakdown
        },
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "model": record.model,
        "model_id": None,
        "model_group": record.model,
        "custom_llm_provider": record.provider,
        "api_base": record.api_base,
        "metadata": record.metadata,
        "end_user": record.end_user or "",
        "request_tags": list(record.tags),
        "startTime": started,
        "endTime": ended,
        "completionStartTime": ended,
        "response_time": (end - record.start_time).total_seconds(),
        "cache_hit": False,
        "saved_cache_cost": 0.0,
        "messages": messages,
        "response": record.response,
        "error_str": error,
        "error_information": None
        if exception is None or error is None or trace is None
        else {
            "error_code": _error_code(exception),
            "error_class": type(exception).__name__,
            "llm_provider": record.provider,
            "traceback": trace,
            "error_message": error,
        },
        "model_parameters": parameters,
        "hidden_params": {
            "model_id": None,
            "cache_key": None,
            "api_base": record.api_base,
            "response_cost": cost,
            "litellm_model_name": record.model,
        },
        "cache_key": None,
        "requester_ip_address": None,
        "spendgate_outcome": record.outcome,
        "spendgate_estimated": record.estimated,
    }
    kwargs: dict[str, Any] = {
        "model": record.model,
        "messages": messages,
        "input": messages,
        "optional_params": dict(parameters),
        "stream": record.stream,
        "call_type": record.call_type,
        "litellm_call_id": record.call_id,
        "custom_llm_provider": record.provider,
        "api_base": record.api_base,
        "response_cost": cost,
        "cost_breakdown": breakdown,
        "usage": record.usage,
        "cache_hit": False,
        "litellm_params": {
            "metadata": record.metadata,
            "api_base": record.api_base,
            "custom_llm_provider": record.provider,
            "litellm_call_id": record.call_id,
        },
        "standard_logging_object": standard,
        "start_time": record.start_time,
        "end_time": end,
    }
    if exception is not None:
        kwargs["exception"] = exception
        kwargs["traceback_exception"] = trace
    return kwargs


def _error_code(exception: BaseException) -> str:
    """LiteLLM's ``error_information.error_code``: the HTTP status of an error answer (as
    text), else ``""`` (a transport error has none)."""
    status = getattr(exception, "status_code", None)
    return str(status) if isinstance(status, int) else ""


# -- dispatch ------------------------------------------------------------------------------


def _targets(*lists: list[Any]) -> list[Any]:
    """The entries of the lists, each object once, strings (integration names) skipped."""
    seen: set[int] = set()
    out: list[Any] = []
    for entries in lists:
        for entry in entries:
            if isinstance(entry, str):
                _warn_name(entry)
            elif id(entry) not in seen:
                seen.add(id(entry))
                out.append(entry)
    return out


_warned: set[str] = set()


def _warn_name(name: str) -> None:
    if name not in _warned:
        _warned.add(name)
        log.warning("callback %r: named integrations are not built in; pass a function or a logger", name)


def listening(*, success: bool) -> bool:
    """Whether a call that ends this way has any callback to run (when none is registered,
    nothing is built for them: no kwargs, no parsed answer)."""
    return bool(callbacks or (success_callback if success else failure_callback))


def listening_any() -> bool:
    """Whether any callback is registered (else a call's start builds nothing for them)."""
    return bool(callbacks or success_callback or failure_callback)


def notify_start(record: CallRecord) -> None:
    """``log_pre_api_call`` of every logger, before the call is sent."""
    if not (callbacks or success_callback or failure_callback):
        return
    for target in _targets(callbacks, success_callback, failure_callback):
        hook = None if _is_function(target) else getattr(target, "log_pre_api_call", None)
        if hook is not None:
            _call(hook, record.model, _messages(record.payload), logging_kwargs(record))


def notify_end(record: CallRecord) -> None:
    """The success or failure callbacks of a call that has ended."""
    success = record.status == "success"
    named = success_callback if success else failure_callback
    if not named and not callbacks:
        return
    kwargs: dict[str, Any] | None = None
    for target in _targets(named, callbacks):
        if kwargs is None:
            kwargs = logging_kwargs(record)
        args = (kwargs, record.response, record.start_time, record.end_time or record.start_time)
        if _is_function(target):
            _call(target, *args)
            continue
        prefix = "async_log_" if record.async_call else "log_"
        hook = getattr(target, f"{prefix}{'success' if success else 'failure'}_event", None)
        if hook is not None and not _is_base_hook(target, hook):
            _call(hook, *args)


def _is_function(target: Any) -> bool:
    return (
        callable(target) and not isinstance(target, CustomLogger) and not hasattr(target, "log_success_event")
    )


def _is_base_hook(target: Any, hook: Any) -> bool:
    """A hook CustomLogger leaves empty (no task for nothing)."""
    if not isinstance(target, CustomLogger):
        return False
    func = getattr(hook, "__func__", None)
    return func is not None and func is getattr(CustomLogger, func.__name__, None)


def _call(fn: Callable[..., Any], *args: Any) -> None:
    try:
        result = fn(*args)
    except Exception:
        log.exception("callback %r raised; the call is not affected", fn)
        return
    if asyncio.iscoroutine(result):
        _spawn(result, fn)


# -- coroutines: tasks on the caller's loop, else on one background loop ----------------------

_tasks: set[asyncio.Task[None]] = set()
_futures: set[Future[None]] = set()
_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


async def _guard(coro: Awaitable[Any], fn: object) -> None:
    try:
        await coro
    except Exception:
        log.exception("callback %r raised; the call is not affected", fn)


def _spawn(coro: Coroutine[Any, Any, Any], fn: object) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        future: Future[None] = asyncio.run_coroutine_threadsafe(_guard(coro, fn), _background_loop())
        _futures.add(future)
        future.add_done_callback(_futures.discard)
        return
    task = loop.create_task(_guard(coro, fn))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _background_loop() -> asyncio.AbstractEventLoop:
    global _background
    with _background_lock:
        if _background is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="spendgate-callbacks", daemon=True).start()
            _background = loop
        return _background


def drain(timeout: float | None = 10.0) -> None:
    """Wait for the coroutine callbacks running on the background loop (sync clients)."""
    for future in list(_futures):
        future.result(timeout)


async def adrain() -> None:
    """Wait for the coroutine callbacks running as tasks on this loop (async clients)."""
    loop = asyncio.get_running_loop()
    pending = [t for t in list(_tasks) if t.get_loop() is loop]
    if pending:
        await asyncio.gather(*pending)


def reset() -> None:
    """Empty the three lists (tests use it)."""
    success_callback.clear()
    failure_callback.clear()
    callbacks.clear()

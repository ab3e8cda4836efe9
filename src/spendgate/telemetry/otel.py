"""OpenTelemetry export: a CLIENT span per billed call and the GenAI client metrics, over OTLP/HTTP.

Imported only when the config turns OpenTelemetry on (:func:`spendgate.telemetry.start_telemetry`),
so a gateway without it never loads the SDK. Each spend event the gateway records (a call,
a failed attempt, a settled batch) becomes, in :meth:`OtelTelemetry.observe`:

* a span ``"{operation} {model}"`` of kind CLIENT, from the request's arrival to its
  billing, with the attributes of :func:`~spendgate.telemetry.attributes.span_attributes`
  and an error status when the call did not succeed (``error``, ``partial``, ``cancelled``);
* ``gen_ai.client.token.usage`` (histogram, ``{token}``, by ``gen_ai.token.type``
  ``input`` | ``output``) and ``gen_ai.client.operation.duration`` (histogram, seconds; not
  for a batch, whose life is hours of queueing, not an operation's latency).

The SDK's own providers are private to this object (the process-wide ones are left alone),
spans leave through a :class:`BatchSpanProcessor` and metrics through a periodic reader:
both export from their own threads, so the request path only builds and queues a span.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import version

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from spendgate.config import OtelSettings
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.telemetry.attributes import metric_attributes, span_attributes, span_name, unix_nanos

__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "OtelTelemetry"]

log = logging.getLogger("spendgate.telemetry")

# The GenAI conventions' advised bucket boundaries.
TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, … 67,108,864
DURATION_BUCKETS = tuple(0.01 * 2**n for n in range(14))  # 0.01, 0.02, … 81.92 s

_INSTRUMENTATION = "spendgate"
_VERSION = version("spendgate")


class OtelTelemetry:
    """The exporters, providers and instruments of one gateway process.

    Args:
        settings: ``general_settings.otel`` (its defaults with ``callbacks: ["otel"]``).
    """

    def __init__(self, settings: OtelSettings) -> None:
        resource = _resource(settings.service_name)
        headers = dict(settings.headers) or None
        self._tracer: Tracer | None = None
        self._tracer_provider: TracerProvider | None = None
        if settings.traces:
            self._tracer_provider = TracerProvider(resource=resource)
            exporter = OTLPSpanExporter(endpoint=_signal_url(settings.endpoint, "traces"), headers=headers)
            self._tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            self._tracer = self._tracer_provider.get_tracer(_INSTRUMENTATION, _VERSION)
        self._tokens: Histogram | None = None
        self._duration: Histogram | None = None
        self._meter_provider: MeterProvider | None = None
        if settings.metrics:
            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=_signal_url(settings.endpoint, "metrics"), headers=headers),
                export_interval_millis=settings.metric_export_interval_seconds * 1000,
            )
            self._meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
            meter = self._meter_provider.get_meter(_INSTRUMENTATION, _VERSION)
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )
            self._duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )

    def observe(self, event: SpendEvent) -> None:
        """One recorded spend event: its span and its metrics (no I/O: both are queued)."""
        end = unix_nanos(event.occurred_at)
        if self._tracer is not None:
            span = self._tracer.start_span(
                span_name(event),
                kind=SpanKind.CLIENT,
                attributes=span_attributes(event),
                start_time=unix_nanos(event.started_at) if event.started_at is not None else end,
            )
            if event.status is not EventStatus.SUCCESS:
                span.set_status(Status(StatusCode.ERROR, event.status.value))
            span.end(end_time=end)
        if self._tokens is not None:
            self._record_metrics(event)

    def _record_metrics(self, event: SpendEvent) -> None:
        attributes = metric_attributes(event)
        usage = event.usage
        if usage.input_tokens or usage.output_tokens:  # a failed attempt used none
            assert self._tokens is not None
            self._tokens.record(usage.input_tokens, {**attributes, "gen_ai.token.type": "input"})
            self._tokens.record(usage.output_tokens, {**attributes, "gen_ai.token.type": "output"})
        if self._duration is not None and event.batch_id is None and event.started_at is not None:
            self._duration.record((event.occurred_at - event.started_at).total_seconds(), attributes)

    def shutdown(self) -> None:
        """Export what is queued and stop the exporters' threads (blocking: run it in a thread)."""
        for provider in (self._tracer_provider, self._meter_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception:  # a collector that is down must not fail the stop
                    log.warning("OpenTelemetry: could not export at shutdown", exc_info=True)


def _resource(service_name: str | None) -> Resource:
    """The process's resource: ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` (read by
    the SDK), the configured name over them, and ``spendgate`` when nothing names the service."""
    attributes: Mapping[str, str] = {SERVICE_VERSION: _VERSION}
    if service_name:
        attributes = {**attributes, SERVICE_NAME: service_name}
    resource = Resource.create(attributes)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: _INSTRUMENTATION}))
    return resource


def _signal_url(endpoint: str | None, signal: str) -> str | None:
    """The configured base URL with the signal's path (None: the SDK reads ``OTEL_EXPORTER_OTLP_*``)."""
    return f"{endpoint}/v1/{signal}" if endpoint else None

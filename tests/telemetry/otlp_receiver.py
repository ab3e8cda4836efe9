"""A real OTLP/HTTP receiver: an HTTP server on a loopback port that decodes the protobuf
``ExportTraceServiceRequest`` and ``ExportMetricsServiceRequest`` bodies (with
opentelemetry-proto) the way a collector does, and keeps what it received."""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def value_of(any_value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value_of(v) for v in any_value.array_value.values)
    if kind == "kvlist_value":
        return attributes_of(any_value.kvlist_value.values)
    return getattr(any_value, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass
class Span:
    name: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    start_ns: int
    end_ns: int
    resource: dict[str, Any]
    scope: str


@dataclass
class Point:
    """One histogram data point."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    count: int
    total: float
    bounds: tuple[float, ...]


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    metric_exports: list[list[Point]] = field(default_factory=list)
    """Each metrics request's histogram points (cumulative: the last one has the totals)."""
    headers: list[dict[str, str]] = field(default_factory=list)
    bad_requests: int = 0


class OtlpReceiver:
    """``with OtlpReceiver() as r:`` serves ``r.url`` (``/v1/traces``, ``/v1/metrics``)."""

    def __init__(self) -> None:
        self.received = Received()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                encoding = self.headers.get("content-encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                answer = receiver._take(
                    self.path, self.headers.get("content-type", ""), body, dict(self.headers)
                )
                if answer is None:
                    self.send_response(400)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take(self, path: str, content_type: str, body: bytes, headers: dict[str, str]) -> bytes | None:
        with self._lock:
            if content_type != "application/x-protobuf":
                self.received.bad_requests += 1
                return None
            self.received.headers.append({k.lower(): v for k, v in headers.items()})
            try:
                if path == "/v1/traces":
                    self._spans(ExportTraceServiceRequest.FromString(body))
                    return ExportTraceServiceResponse().SerializeToString()
                if path == "/v1/metrics":
                    self._points(ExportMetricsServiceRequest.FromString(body))
                    return ExportMetricsServiceResponse().SerializeToString()
            except Exception:  # not a valid protobuf body (google.protobuf's DecodeError)
                pass
            self.received.bad_requests += 1
            return None

    def _spans(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.received.spans.append(
                        Span(
                            name=span.name,
                            kind=span.kind,
                            attributes=attributes_of(span.attributes),
                            status_code=span.status.code,
                            status_message=span.status.message,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            resource=resource,
                            scope=scope_spans.scope.name,
                        )
                    )

    def _points(self, request: ExportMetricsServiceRequest) -> None:
        points: list[Point] = []
        self.received.metric_exports.append(points)
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.WhichOneof("data") != "histogram":
                        continue
                    for point in metric.histogram.data_points:
                        points.append(
                            Point(
                                metric=metric.name,
                                unit=metric.unit,
                                attributes=attributes_of(point.attributes),
                                count=point.count,
                                total=point.sum,
                                bounds=tuple(point.explicit_bounds),
                            )
                        )

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self.received.spans)

    def points(self) -> list[Point]:
        """The histogram points of the last metrics export (cumulative totals)."""
        with self._lock:
            return list(self.received.metric_exports[-1]) if self.received.metric_exports else []

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

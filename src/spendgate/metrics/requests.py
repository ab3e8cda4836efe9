"""The metrics the request path feeds: one call per billed request, one per failed request.

:meth:`RequestMetrics.observe` only adds plain integers and floats into the pending sums of
its label set (one dict look-up, a few additions, and a bisect per histogram: about a
microsecond); :meth:`RequestMetrics.flush` moves the pending sums into prometheus-client's
counters and histograms, once per label set, before every scrape and every second (so other
workers' files are at most a second behind). Money is summed as integer nano-USD and becomes
a float number of USD only there, at the metric boundary: Prometheus values are floats, the
ledger is the truth (``docs/metrics.md``).

With ``spendgate serve --workers N`` prometheus-client's multiprocess mode is on
(``PROMETHEUS_MULTIPROC_DIR``, set by ``serve``): each worker writes its own values to
memory-mapped files and a scrape sums them; gauges declare how (``multiprocess_mode``).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from spendgate.metrics.labels import LabelPolicy

__all__ = ["NANOS_PER_USD", "RequestMetrics"]

NANOS_PER_USD = 1_000_000_000

# Seconds. The gateway's own overhead is usually well under 10 ms; a request's duration
# includes the upstream's time and so spans minutes for long streams.
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_LITELLM_LABELS = ("end_user", "hashed_api_key", "model", "requested_model", "team", "user", "api_provider")
_TOTAL_LABELS = ("end_user", "hashed_api_key", "requested_model", "team", "user", "status_code", "route")


class _Bound:
    """One label set: its metrics' children, and what was observed since the last flush."""

    __slots__ = (
        "duration",
        "duration_counts",
        "duration_sum",
        "input",
        "input_tokens",
        "nanos",
        "observed",
        "outcome",
        "output",
        "output_tokens",
        "overhead",
        "overhead_counts",
        "overhead_seconds",
        "overhead_sum",
        "proxy_total",
        "requests",
        "spend",
        "spend_usd",
        "total_tokens",
    )

    spend: Any
    spend_usd: Any
    total_tokens: Any
    input_tokens: Any
    output_tokens: Any
    requests: Any
    proxy_total: Any
    outcome: Any
    overhead: Any
    overhead_seconds: Any
    duration: Any
    nanos: int
    input: int
    output: int
    observed: int
    duration_counts: list[int]
    overhead_counts: list[int]
    duration_sum: float
    overhead_sum: float

    def __init__(self, **children: Any) -> None:
        for name, child in children.items():
            setattr(self, name, child)
        self.nanos = self.input = self.output = self.observed = 0
        self.duration_counts = [0] * (len(_DURATION_BUCKETS) + 1)  # the last: le="+Inf"
        self.overhead_counts = [0] * (len(_OVERHEAD_BUCKETS) + 1)
        self.duration_sum = self.overhead_sum = 0.0

    def flush(self) -> None:
        if self.nanos:
            usd = self.nanos / NANOS_PER_USD
            self.spend.inc(usd)
            self.spend_usd.inc(usd)
        if self.input or self.output:
            self.total_tokens.inc(self.input + self.output)
            self.input_tokens.inc(self.input)
            self.output_tokens.inc(self.output)
        self.requests.inc(self.observed)
        self.proxy_total.inc(self.observed)
        self.outcome.inc(self.observed)
        _add_to_histogram(self.duration, self.duration_counts, self.duration_sum)
        if any(self.overhead_counts):
            _add_to_histogram(self.overhead, self.overhead_counts, self.overhead_sum)
            _add_to_histogram(self.overhead_seconds, self.overhead_counts, self.overhead_sum)
        self.nanos = self.input = self.output = self.observed = 0
        self.duration_counts = [0] * len(self.duration_counts)
        self.overhead_counts = [0] * len(self.overhead_counts)
        self.duration_sum = self.overhead_sum = 0.0


def _add_to_histogram(child: Any, counts: list[int], total: float) -> None:
    """Add pre-bucketed observations to a histogram child: what ``observe`` would have done
    once per value (its per-bucket, non-cumulative values and its sum; prometheus-client's
    own attributes, the same in multiprocess mode; tests compare the counts with the ledger)."""
    for bucket, count in zip(child._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    child._sum.inc(total)


class RequestMetrics:
    """Counters, histograms and health gauges of one gateway process.

    Args:
        labels: the bounded label policy.
        registry: where the metrics are registered (a private one by default, so several
            apps in one process — tests — do not collide).
    """

    def __init__(self, labels: LabelPolicy, registry: CollectorRegistry | None = None) -> None:
        self.labels = labels
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        # LiteLLM's names (reference §8), so existing dashboards keep working.
        self.spend = Counter(
            "litellm_spend_metric", "Total spend on LLM requests (USD)", _LITELLM_LABELS, registry=r
        )
        self.total_tokens = Counter(
            "litellm_total_tokens_metric", "Input + output tokens", _LITELLM_LABELS, registry=r
        )
        self.input_tokens = Counter(
            "litellm_input_tokens_metric", "Input tokens", _LITELLM_LABELS, registry=r
        )
        self.output_tokens = Counter(
            "litellm_output_tokens_metric", "Output tokens", _LITELLM_LABELS, registry=r
        )
        self.requests = Counter(
            "litellm_requests_metric", "LLM calls billed (every outcome)", _LITELLM_LABELS, registry=r
        )
        self.proxy_total = Counter(
            "litellm_proxy_total_requests_metric",
            "Inference requests answered by the gateway, failed ones included",
            _TOTAL_LABELS,
            registry=r,
        )
        self.proxy_failed = Counter(
            "litellm_proxy_failed_requests_metric",
            "Inference requests answered with an error",
            ("route", "exception_status", "exception_class"),
            registry=r,
        )
        self.overhead = Histogram(
            "litellm_overhead_latency_metric",
            "Time spent in the gateway per request, upstream excluded (seconds)",
            ("requested_model", "api_provider"),
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        # spendgate's own, in base units.
        self.spend_usd = Counter(
            "spendgate_spend_usd",
            "Spend billed (USD; from integer nano-USD, the ledger is exact)",
            ("requested_model", "api_provider", "team"),
            registry=r,
        )
        self.outcomes = Counter(
            "spendgate_requests",
            "Inference requests by outcome (success, partial, cancelled: billed; failed: an error answer)",
            ("route", "requested_model", "outcome"),
            registry=r,
        )
        self.overhead_seconds = Histogram(
            "spendgate_overhead_seconds",
            "Time spent in the gateway per billed request, upstream excluded",
            ("route",),
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "spendgate_request_duration_seconds",
            "Time from a request's arrival until it was billed (a stream: until it ended)",
            ("route",),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "spendgate_requests_in_flight",
            "HTTP requests being served (each inference request holds its reservations meanwhile)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "spendgate_recorder_queue_depth",
            "Spend events waiting to be written to the ledger",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.journal_bytes = Gauge(
            "spendgate_recorder_journal_bytes",
            "Bytes in the local spend journal not yet confirmed written to the ledger (journal lag)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.dead_lettered = Gauge(
            "spendgate_recorder_dead_lettered_events",
            "Spend events the database refused for good since start (in dead-letter.jsonl)",
            registry=r,
            multiprocess_mode="livesum",
        )
        # The batch-cost job (LiteLLM's CheckBatchCost family): it runs on one instance.
        self.batch_polled = Gauge(
            "litellm_check_batch_cost_jobs_polled",
            "Batches looked at by the last batch-cost cycle",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.batch_processed = Counter(
            "litellm_check_batch_cost_jobs_processed", "Batches billed by the batch-cost job", registry=r
        )
        self.batch_errors = Counter(
            "litellm_check_batch_cost_errors", "Batches the batch-cost job could not settle", registry=r
        )
        self.batch_last_run = Gauge(
            "litellm_check_batch_cost_last_run_timestamp",
            "When the last batch-cost cycle ended (unix seconds)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.batch_cycles = Counter("spendgate_batch_poller_cycles", "Batch-cost cycles run", registry=r)
        # Alert deliveries: one per recorded attempt, by channel id (from the config, so
        # bounded) and outcome (sent, retry, dead). The outbox's pending rows are a gauge read
        # from the database when scraped (metrics.outbox), not a per-process value.
        self.alert_deliveries = Counter(
            "spendgate_alert_deliveries",
            "Alert delivery attempts recorded, by channel and outcome (sent, retry, dead)",
            ("channel", "outcome"),
            registry=r,
        )
        self._bound: dict[tuple[str, ...], _Bound] = {}

    # -- the request path ------------------------------------------------------------------

    def observe(
        self,
        *,
        route: str,
        requested_model: str,
        model: str | None,
        provider: str,
        api_key: str | None,
        user: str | None,
        team: str | None,
        end_user: str | None,
        input_tokens: int,
        output_tokens: int,
        nanos: int,
        outcome: str,
        duration: float,
        overhead: float | None,
    ) -> None:
        """One billed call (any outcome): spend, tokens, counts and timings."""
        policy = self.labels
        key = (
            policy.customer(end_user),
            api_key or "",
            policy.model(model),
            policy.model(requested_model),
            team or "",
            user or "",
            provider,
            route,
            outcome,
        )
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bind(key)
        bound.nanos += nanos
        bound.input += input_tokens
        bound.output += output_tokens
        bound.observed += 1
        bound.duration_counts[bisect_left(_DURATION_BUCKETS, duration)] += 1
        bound.duration_sum += duration
        if overhead is not None:
            bound.overhead_counts[bisect_left(_OVERHEAD_BUCKETS, overhead)] += 1
            bound.overhead_sum += overhead

    def flush(self) -> None:
        """Move what was observed since the last flush into the metrics (see the module docstring)."""
        for bound in self._bound.values():
            if bound.observed:
                bound.flush()

    def failed(self, route: str, status: int, exception_class: str) -> None:
        """A request answered with an error (refused, rejected or failed upstream)."""
        self.proxy_failed.labels(route, str(status), exception_class).inc()
        self.proxy_total.labels("", "", "", "", "", str(status), route).inc()
        self.outcomes.labels(route, "", "failed").inc()

    def _bind(self, key: tuple[str, ...]) -> _Bound:
        end_user, api_key, model, requested, team, user, provider, route, outcome = key
        litellm = (end_user, api_key, model, requested, team, user, provider)
        bound = _Bound(
            spend=self.spend.labels(*litellm),
            spend_usd=self.spend_usd.labels(requested, provider, team),
            total_tokens=self.total_tokens.labels(*litellm),
            input_tokens=self.input_tokens.labels(*litellm),
            output_tokens=self.output_tokens.labels(*litellm),
            requests=self.requests.labels(*litellm),
            proxy_total=self.proxy_total.labels(end_user, api_key, requested, team, user, "200", route),
            outcome=self.outcomes.labels(route, requested, outcome),
            overhead=self.overhead.labels(requested, provider),
            overhead_seconds=self.overhead_seconds.labels(route),
            duration=self.duration.labels(route),
        )
        self._bound[key] = bound
        return bound

    # -- off the request path ----------------------------------------------------------------

    def health(self, *, in_flight: int, queue_depth: int, journal_bytes: int, dead_lettered: int) -> None:
        """This process's health gauges (set every second by a background task)."""
        self.in_flight.set(in_flight)
        self.queue_depth.set(queue_depth)
        self.journal_bytes.set(journal_bytes)
        self.dead_lettered.set(dead_lettered)

    def alert_delivery(self, channel: str, outcome: str) -> None:
        """One alert delivery attempt recorded (the sender job)."""
        self.alert_deliveries.labels(channel, outcome).inc()

    def batch_cycle(self, *, seen: int, settled: int, errors: int) -> None:
        """One batch-cost cycle ended."""
        self.batch_polled.set(seen)
        if settled:
            self.batch_processed.inc(settled)
        if errors:
            self.batch_errors.inc(errors)
        self.batch_last_run.set(time.time())
        self.batch_cycles.inc()

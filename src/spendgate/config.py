"""The gateway's YAML configuration, LiteLLM style.

::

    model_list:                       # model groups: every entry is one deployment
      - model_name: gpt-4o            # the name clients ask for
        litellm_params:
          model: openai/gpt-4o        # provider/model upstream
          api_base: http://127.0.0.1:8090
          api_key: os.environ/OPENAI_API_KEY
          input_cost_per_token: 0.0000025   # optional per-deployment prices
        model_info: {id: gpt-4o-primary, base_model: gpt-4o}
    general_settings: {master_key: sk-..., database_url: sqlite+aiosqlite:///spendgate.db}
    litellm_settings: {num_retries: 2, request_timeout: 600}
    router_settings: {routing_strategy: simple-shuffle, fallbacks: [{gpt-4o: [claude]}]}

Every section accepts the keys spendgate implements; keys that LiteLLM knows but
spendgate does not implement (``drop_params``, ``telemetry``, ``success_callback`` …) are
accepted with a warning (:attr:`GatewayConfig.warnings`), so an existing LiteLLM config
starts unchanged; a key unknown to both is an error that names it. Any string value
``os.environ/NAME`` is read from the environment (or ``environment_variables``), and
``SPENDGATE_*`` variables (and LiteLLM's ``PROXY_BATCH_POLLING_INTERVAL``) override
``general_settings`` (see :data:`ENV_OVERRIDES`).
Errors name the field: ``model_list[2].litellm_params.api_base: …``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spendgate.core.periods import get_timezone, parse_window
from spendgate.errors import ConfigurationError

__all__ = [
    "ENV_OVERRIDES",
    "AlertingArgs",
    "CacheParams",
    "DeploymentConfig",
    "GatewayConfig",
    "GeneralSettings",
    "LiteLLMParams",
    "LitellmSettings",
    "ModelInfo",
    "OtelSettings",
    "RouterSettings",
    "ScheduledReport",
    "load_config",
    "parse_config",
]

ENV_OVERRIDES: Mapping[str, str] = {
    "SPENDGATE_MASTER_KEY": "master_key",
    "SPENDGATE_DATABASE_URL": "database_url",
    "SPENDGATE_REDIS_URL": "redis_url",
    "SPENDGATE_MAX_REQUEST_SIZE_MB": "max_request_size_mb",
    "PROXY_BATCH_POLLING_INTERVAL": "batch_poll_interval_seconds",  # LiteLLM's name, in seconds
}
"""Environment variable → ``general_settings`` key it overrides."""

_ENV_PREFIX = "os.environ/"
_COST_FIELD = re.compile(r"(^|_)(cost|costs|price)(_|$)")


def _valid_window(value: str | None) -> str | None:
    if value is not None:
        parse_window(value)  # its ValueError names the bad duration
    return value


def _valid_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/") if value else value


def is_cost_field(name: str) -> bool:
    """True for LiteLLM's per-model price fields (``input_cost_per_token`` …)."""
    return bool(_COST_FIELD.search(name))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    litellm_only: ClassVar[frozenset[str]] = frozenset()
    """LiteLLM keys of this section that spendgate accepts and ignores (with a warning)."""


class LiteLLMParams(BaseModel):
    """How to reach one deployment. Unknown keys are passed on by LiteLLM; here they warn."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    """``provider/model``: ``openai/gpt-4o``, ``azure/<deployment>``, ``anthropic/claude-…``."""
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    """Azure OpenAI's ``api-version``."""
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    base_model: str | None = None
    max_budget: Decimal | None = Field(default=None, ge=0)
    """This deployment's budget (USD): over it, routing skips the deployment."""
    budget_duration: str | None = None
    """The window of ``max_budget`` ("1d", "1mo" …); none: lifetime."""

    @field_validator("budget_duration")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return _valid_window(value)

    @field_validator("api_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _valid_url(value)

    def cost_fields(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if is_cost_field(k)}


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str | None = None
    base_model: str | None = None
    mode: str | None = None

    def cost_fields(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if is_cost_field(k)}


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field(min_length=1)
    litellm_params: LiteLLMParams
    model_info: ModelInfo = ModelInfo()


Breakdown = Literal["model", "key", "team"]


class ScheduledReport(BaseModel):
    """One entry of ``alerting_args.spend_reports``: a spend summary sent once per completed
    period (docs/alerts.md, "Scheduled reports")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
    """Unique among the reports (1-32 letters, digits, ``_ . -``): with the period, it
    identifies a report, so renaming one starts it afresh."""
    frequency: Literal["daily", "weekly", "monthly"]
    """The calendar: local days, weeks from Monday, months from the 1st."""
    scope: Literal["global", "team"] = "global"
    team_ids: list[str] = Field(default_factory=list)
    """With ``scope: team``: one report per team."""
    timezone: str | None = None
    """IANA zone of the calendar (else ``litellm_settings.timezone``)."""
    channels: list[Literal["slack", "webhook", "email"]] | None = None
    """Which of ``general_settings.alerting`` (default: all of them)."""
    breakdowns: list[Breakdown] = Field(default_factory=lambda: list(get_args(Breakdown)))
    """Top-N lists to include (``team``: global reports only)."""
    top_n: int = Field(default=5, ge=1, le=50)
    lookback_periods: int = Field(default=1, ge=1, le=31)
    """A missed report is still sent for this many completed periods back (1: the last)."""
    grace_seconds: float = Field(default=300, ge=0, le=86400, allow_inf_nan=False)
    """How long after a period ends its report waits (for the period's last events)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            get_timezone(value)  # its ValueError names the zone
        return value

    @field_validator("team_ids")
    @classmethod
    def _teams(cls, value: list[str]) -> list[str]:
        if any(not t for t in value):
            raise ValueError("a team id is empty")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _scope(self) -> ScheduledReport:
        if self.scope == "team" and not self.team_ids:
            raise ValueError("scope team needs team_ids")
        if self.scope == "global" and self.team_ids:
            raise ValueError("team_ids needs scope: team")
        return self


class AlertingArgs(_Section):
    """``general_settings.alerting_args``: LiteLLM's keys are accepted (with a warning), these
    are spendgate's. Channel secrets may come from the environment (docs/alerts.md)."""

    budget_thresholds: list[Decimal] = Field(default_factory=lambda: [Decimal(50), Decimal(80), Decimal(100)])
    """Percents of ``max_budget`` that alert once per (scope, window, period)."""
    budget_alerts: bool = True
    """Detect budget crossings at settlement (thresholds, soft budget, forecast) and record
    them as alerts; off: no detection at all (the decision rows are not written)."""
    forecast_after: Decimal = Field(default=Decimal("0.1"), gt=0, le=1)
    """The fraction of a period that must have passed before a ``projected_exceed`` forecast."""
    resolve_interval_seconds: float = Field(default=60, gt=0, le=3600, allow_inf_nan=False)
    """How often ended periods' budget alerts are resolved (``budget_resolved``)."""
    webhook_secret: str | None = None
    """The ``whsec_…`` secret that signs webhooks (else ``$SPENDGATE_WEBHOOK_SECRET``)."""
    email_recipients: list[str] = Field(default_factory=list)
    """Who gets alert emails (else ``$SPENDGATE_ALERT_EMAILS``, comma-separated)."""
    dashboard_url: str | None = None
    """A link put in every message (the UI, a Grafana board)."""
    # Finite and bounded: an infinite or huge value overflows a timedelta or a lease time
    # and silently stops every delivery, so it is refused at start.
    retry_hours: float = Field(default=24, ge=1, le=720, allow_inf_nan=False)
    """How long a failing delivery is retried before it is marked ``dead``."""
    retry_base_seconds: float = Field(default=5, gt=0, le=86400, allow_inf_nan=False)
    """The first retry's delay; each next one doubles (with jitter), up to ``retry_max_seconds``."""
    retry_max_seconds: float = Field(default=1800, gt=0, le=86400, allow_inf_nan=False)
    send_interval_seconds: float = Field(default=5, gt=0, le=3600, allow_inf_nan=False)
    """How often the sender job drains the outbox."""
    request_timeout_seconds: float = Field(default=10, gt=0, le=300, allow_inf_nan=False)
    """The longest one delivery (HTTP or SMTP) may take."""
    claim_lease_seconds: float = Field(default=120, gt=0, le=86400, allow_inf_nan=False)
    """How long a sender's claim on an outbox row keeps other senders off it (longer than
    ``request_timeout_seconds``, or a slow send is sent twice)."""

    spend_reports: list[ScheduledReport] = Field(default_factory=list)
    """Scheduled spend reports (daily / weekly / monthly), each to the alert channels."""
    report_check_interval_seconds: float = Field(default=60, gt=0, le=3600, allow_inf_nan=False)
    """How often the report scheduler looks for a completed period to report."""

    # Operational alerts (docs/alerts.md, "Operational alerts").
    operational_check_interval_seconds: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)
    """How often the storage, journal and unpriced-usage checks run."""
    storage_unreachable_after_seconds: float = Field(default=60, ge=0, le=86400, allow_inf_nan=False)
    """How long the database or Redis must be unreachable before it is an outage."""
    journal_backlog_events: int = Field(default=50_000, ge=1)
    """Spend events waiting in a recorder's queue that count as a backlog."""
    journal_backlog_bytes: int = Field(default=256 << 20, ge=1)
    """Journal bytes not yet confirmed in the ledger that count as a backlog."""
    journal_stalled_seconds: float = Field(default=300, gt=0, le=86400, allow_inf_nan=False)
    """How long events may wait with no successful ledger write before it is a backlog."""
    retention_days: int = Field(default=90, ge=1, le=36500)
    """Alert, outbox and delivery-log rows older than this are removed (daily job)."""

    litellm_only: ClassVar[frozenset[str]] = frozenset(
        {
            "budget_alert_ttl", "daily_report_frequency", "report_check_interval", "outage_alert_ttl",
            "region_outage_alert_ttl", "minor_outage_alert_threshold", "major_outage_alert_threshold",
            "max_outage_alert_list_size", "log_to_console",
        }
    )  # fmt: skip

    @field_validator("budget_thresholds")
    @classmethod
    def _percents(cls, value: list[Decimal]) -> list[Decimal]:
        for percent in value:
            if not percent.is_finite() or percent <= 0 or percent > 1000:
                raise ValueError(f"{percent} is not a percent in (0, 1000]")
        return sorted(set(value))

    @field_validator("spend_reports")
    @classmethod
    def _unique_names(cls, value: list[ScheduledReport]) -> list[ScheduledReport]:
        names = [r.name for r in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two reports are named {name!r}")
        return value

    @field_validator("claim_lease_seconds")
    @classmethod
    def _lease_outlasts_timeout(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("request_timeout_seconds")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than request_timeout_seconds ({timeout:g})")
        return value


class OtelSettings(_Section):
    """``general_settings.otel``: OpenTelemetry export over OTLP/HTTP (docs/metrics.md). The
    block turns it on, as LiteLLM's ``litellm_settings.callbacks: ["otel"]`` does; the
    standard ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_SERVICE_NAME`` variables fill what it omits."""

    enabled: bool = True
    endpoint: str | None = None
    """The collector's OTLP/HTTP base URL (``/v1/traces`` and ``/v1/metrics`` are appended);
    else ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every export (else ``OTEL_EXPORTER_OTLP_HEADERS``)."""
    service_name: str | None = None
    """The resource's ``service.name`` (else ``OTEL_SERVICE_NAME``, else ``spendgate``)."""
    traces: bool = True
    metrics: bool = True
    metric_export_interval_seconds: float = Field(default=60, gt=0, le=86400, allow_inf_nan=False)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _valid_url(value)


class GeneralSettings(_Section):
    master_key: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    max_request_size_mb: float = Field(default=32, gt=0)
    """Bodies larger than this are refused with 413 while being read, before parsing."""
    forward_client_headers_to_llm_api: bool = False
    """Forward the client's ``x-*`` headers (not its credentials) to the upstream."""
    trust_end_user_field: bool = True
    """Attribute calls to the end customer named by the request's ``user`` field (Anthropic:
    ``metadata.user_id``); false turns body-named customers off (bound keys and a trusted
    proxy's header still name them)."""
    key_cache_ttl_seconds: float = Field(default=10, ge=0)
    """How long a virtual key looked up in the database is trusted before a new look-up."""
    stale_cache_max_seconds: float = Field(default=3600, ge=0)
    """While the database is unreachable, how long past their TTL cached keys and entity
    limits are still honoured (0: never; see docs/gateway.md, database outages)."""
    database_lookup_timeout_seconds: float = Field(default=5, gt=0)
    """The longest a request waits for a key or entity look-up in the database."""
    database_connect_timeout_seconds: float = Field(default=5, gt=0)
    """PostgreSQL: the longest a new connection may take to open."""
    database_command_timeout_seconds: float | None = Field(default=60, gt=0)
    """PostgreSQL: the longest one statement may wait for its answer (null: no limit)."""
    database_pool_timeout_seconds: float = Field(default=5, gt=0)
    """The longest a caller waits for a free pooled database connection."""
    batch_poll_interval_seconds: float = Field(default=60, gt=0)
    """How often the batch-cost job asks providers about unsettled batches (one instance at a
    time, under the jobs leader lock); up to ``batch_poll_jitter_seconds`` more at random."""
    batch_poll_jitter_seconds: float = Field(default=10, ge=0)
    batch_max_age_hours: float = Field(default=72, gt=0)
    """A batch still not billed this long after its creation is retired as stale and its
    reservation released (nothing billed). A batch's reservation lasts this long, plus an hour."""
    batch_claim_lease_seconds: float = Field(default=600, gt=0)
    """How long a poller's claim on a finished batch keeps other instances off it while it
    bills it; a poller that died mid-bill is taken over after this."""
    max_batch_file_size_mb: float = Field(default=200, gt=0)
    """Batch input files (``POST /v1/files``) and message-batch bodies larger than this are
    refused with 413 (OpenAI's own limit is 200 MB)."""
    budget_reset_timezone: str | None = None
    """LiteLLM's IANA zone of budget resets: the same as ``litellm_settings.timezone``
    (give one, or both the same)."""
    budget_exceeded_status: Literal[400, 402, 403, 422, 429] = 402
    """HTTP status of a budget_exceeded error (LiteLLM has used 400, 429 and 422)."""
    budget_mode: Literal["strict", "check_only"] = "strict"
    """``strict``: reserve the worst case (cannot be raced past); ``check_only``: LiteLLM's."""
    fail_open_budgets: bool = False
    """Admit requests with budgets unchecked when the counter storage (Redis) is down."""
    fail_open_rate_limits: bool = True
    """Admit requests with only rate limits unchecked when the counter storage is down."""
    apply_user_budget_to_team_keys: bool = False
    """Also check the key owner's own budget on team keys (LiteLLM's setting)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """CIDRs whose ``x-spendgate-end-user`` header names the end customer."""
    default_max_output_tokens: int = Field(default=4096, ge=0)
    """Output tokens reserved when neither the request nor the catalogue bounds them."""
    enforcement_key_prefix: str = "sg"
    """Prefix (Redis hash tag) of the enforcement counters."""
    rate_limit_window_seconds: float = Field(default=60, gt=0)
    """Window of rpm_limit / tpm_limit (60: per minute; shorter only for tests)."""
    reservation_lease_seconds: float = Field(default=900, gt=0)
    """How long a reservation or parallel slot lives without a settle or release."""
    upstream_http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    """``aiohttp``: one pooled ``aiohttp.ClientSession``; ``httpx``: an ``httpx.AsyncClient``
    (both take proxies from the environment). ``fast`` (removed) is read as ``aiohttp``."""
    upstream_http2: bool = False
    """Speak HTTP/2 to upstreams that offer it (uses the httpx client)."""
    run_migrations: bool = True
    """Migrate the database at start-up; when off, start only if it is up to date."""
    journal_dir: str | None = None
    metrics_enabled: bool = True
    """Count every call for Prometheus and serve ``GET /metrics`` (off: nothing on the request path)."""
    metrics_max_budget_entities: int = Field(default=1000, ge=0)
    """At most this many teams, keys, users, organizations and customers (each) get budget gauges."""
    alerting: list[Literal["slack", "webhook", "email"]] = Field(default_factory=list)
    """The alert channels (LiteLLM's): ``slack`` (``SLACK_WEBHOOK_URL``, ``alert_to_webhook_url``),
    ``webhook`` (``WEBHOOK_URL``, signed), ``email`` (``SMTP_*``). See docs/alerts.md."""
    alert_types: list[str] | None = None
    """Which alerts are sent (LiteLLM's names such as ``budget_alerts``, or spendgate's kinds);
    none: every kind spendgate decides."""
    alerting_threshold: float | None = Field(default=None, gt=0)
    """LiteLLM's slow/hanging-request threshold (seconds): accepted; spendgate sends no
    latency alerts, so it is unused."""
    alert_to_webhook_url: dict[str, str | list[str]] = Field(default_factory=dict)
    """LiteLLM's alert type → the Slack webhook URL(s) that take it (instead of ``SLACK_WEBHOOK_URL``)."""
    alerting_args: AlertingArgs = Field(default_factory=lambda: AlertingArgs())
    otel: OtelSettings | None = None
    """OpenTelemetry export (off when absent, unless ``litellm_settings.callbacks`` has ``otel``)."""
    display_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    """ISO 4217 code spend is also shown in (``EUR``), at ``exchange_rates_file``'s rates; the
    ledger stays in USD (docs/spend-api.md, "Currency")."""
    exchange_rates_file: str | None = None
    """The operator's exchange rates (dated USD → currency rates; read again when it changes)."""

    litellm_only: ClassVar[frozenset[str]] = frozenset(
        {
            "allow_client_side_credentials", "allow_requests_on_db_unavailable", "allowed_ips",
            "allowed_routes", "background_health_checks", "custom_auth", "custom_key_generate",
            "database_connection_pool_limit", "database_connection_timeout",
            "disable_adding_master_key_hash_to_db", "disable_master_key_return",
            "disable_prisma_schema_update", "disable_reset_budget",
            "disable_retry_on_max_parallel_request_limit_error",
            "disable_spend_logs", "embedding_model", "enable_jwt_auth", "enable_oauth2_auth",
            "enforce_user_param", "global_max_parallel_requests", "health_check_details",
            "health_check_interval", "infer_model_from_keys", "key_management_settings",
            "key_management_system", "litellm_jwtauth", "max_parallel_requests", "max_response_size_mb",
            "maximum_spend_logs_retention_interval", "maximum_spend_logs_retention_period",
            "pass_through_endpoints", "proxy_batch_write_at", "proxy_budget_rescheduler_max_time",
            "proxy_budget_rescheduler_min_time", "public_routes", "spend_report_frequency",
            "store_model_in_db", "store_prompts_in_spend_logs", "track_unmanaged_batch_cost",
            "track_unmanaged_vertex_batch_cost", "ui_access_mode",
            "use_client_credentials_pass_through_routes", "use_redis_transaction_buffer",
            "user_header_name",
        }
    )  # fmt: skip


class CacheParams(_Section):
    """``litellm_settings.cache_params``: the response cache, on with ``cache: true``
    (docs/gateway.md, "Response caching")."""

    type: Literal["local", "redis"] = "local"
    """``local``: in this process (an LRU of ``max_size_mb``); ``redis``: shared by every
    instance (``url``, else ``host``/``port``/``password``, else ``general_settings.redis_url``)."""
    ttl: float = Field(default=600, gt=0, le=31_536_000, allow_inf_nan=False)
    """Seconds an answer stays cached (a request's ``cache.ttl`` overrides it)."""
    namespace: str | None = Field(default=None, max_length=64)
    """Prefix of every cache key (so several gateways can share one Redis apart)."""
    supported_call_types: list[str] | None = None
    """LiteLLM's call types that are cached (``acompletion``, ``atext_completion``,
    ``aembedding``, ``aresponses``, ``anthropic_messages`` …); none: all of these."""
    mode: Literal["default_on", "default_off"] = "default_on"
    """``default_off``: only requests that send ``cache: {use-cache: true}`` are cached."""
    url: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    password: str | None = None
    max_size_mb: float = Field(default=64, gt=0, allow_inf_nan=False)
    """``local``: the most the cached answers may take, in MiB (least recently used go first)."""
    max_item_mb: float = Field(default=4, gt=0, allow_inf_nan=False)
    """An answer larger than this (MiB) is not cached."""

    litellm_only: ClassVar[frozenset[str]] = frozenset(
        {"default_in_memory_ttl", "default_in_redis_ttl", "redis_startup_nodes", "service_name",
         "sentinel_nodes", "max_connections", "socket_timeout"}
    )  # fmt: skip


class LitellmSettings(_Section):
    num_retries: int | None = Field(default=None, ge=0)
    request_timeout: float | None = Field(default=None, gt=0)
    fallbacks: list[dict[str, list[str]]] | None = None
    cost_discount_config: dict[str, Any] | None = None
    cost_margin_config: dict[str, Any] | None = None
    max_budget: Decimal | None = Field(default=None, ge=0)
    """The global budget (USD) over every request; ``budget_duration`` is its window."""
    budget_duration: str | None = None
    max_end_user_budget: Decimal | None = Field(default=None, ge=0)
    """The budget (USD) an unknown end customer gets on first sight (lifetime, LiteLLM's)."""
    timezone: str = "UTC"
    """IANA timezone of budget calendars (day, month …) unless an entity sets its own
    (``general_settings.budget_reset_timezone`` sets it too)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        get_timezone(value)  # its ValueError names the zone
        return value

    require_auth_for_metrics_endpoint: bool = False
    """``GET /metrics`` asks for a key (the master key or a virtual key); open by default, as LiteLLM's."""
    enable_end_user_cost_tracking_prometheus_only: bool = False
    """Label metrics with the end customer (off: unbounded caller input never becomes a label)."""
    callbacks: list[str] = Field(default_factory=list)
    """LiteLLM's callback names: ``otel`` turns OpenTelemetry on; the others warn (not implemented)."""
    cache: bool = False
    """The response cache: identical requests answered from it, at $0 (``cache_params``)."""
    cache_params: CacheParams = Field(default_factory=lambda: CacheParams())

    litellm_only: ClassVar[frozenset[str]] = frozenset(
        {
            "allowed_fails", "budget_reset_time", "callback_settings",
            "content_policy_fallbacks", "context_window_fallbacks", "default_fallbacks",
            "default_internal_user_params", "default_key_generate_params", "default_team_settings",
            "disable_add_transform_inline_image_block", "disable_end_user_cost_tracking",
            "drop_params", "enable_json_schema_validation", "enable_preview_features",
            "extra_spend_tag_headers", "failure_callback", "force_ipv4", "json_logs",
            "key_generation_settings", "max_internal_user_budget",
            "modify_params", "redact_messages_in_exceptions", "redact_user_api_key_info",
            "return_response_headers", "service_callback", "set_verbose", "ssl_verify",
            "success_callback", "telemetry", "turn_off_message_logging", "upperbound_key_generate_params",
        }
    )  # fmt: skip


_STRATEGIES = {
    "simple-shuffle": "simple-shuffle",
    "least-busy": "least-busy",
    "lowest-cost": "lowest-cost",
    "cost-based-routing": "lowest-cost",
}


class ProviderBudget(BaseModel):
    """One provider's budget (``router_settings.provider_budget_config``, LiteLLM's names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_budget: Decimal = Field(ge=0, validation_alias=AliasChoices("max_budget", "budget_limit"))
    budget_duration: str | None = Field(
        default=None, validation_alias=AliasChoices("budget_duration", "time_period")
    )

    @field_validator("budget_duration")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return _valid_window(value)


class RouterSettings(_Section):
    routing_strategy: str = "simple-shuffle"
    num_retries: int | None = Field(default=None, ge=0)
    fallbacks: list[dict[str, list[str]]] | None = None
    timeout: float | None = Field(default=None, gt=0)
    retry_after: float = Field(default=0.05, ge=0)
    """Base of the exponential back-off between retries, in seconds."""
    max_retry_delay: float = Field(default=2.0, ge=0)
    provider_budget_config: dict[str, ProviderBudget] = Field(default_factory=dict)
    """Budgets per provider (``openai``, ``anthropic``, ``azure`` …): over its budget, every
    deployment of the provider is skipped by routing."""

    litellm_only: ClassVar[frozenset[str]] = frozenset(
        {
            "allowed_fails", "allowed_fails_policy", "content_policy_fallbacks", "context_window_fallbacks",
            "cooldown_time", "default_fallbacks", "default_litellm_params", "disable_cooldowns",
            "enable_pre_call_checks", "enable_tag_filtering", "max_fallbacks", "model_group_alias",
            "optional_pre_call_checks", "redis_host", "redis_password",
            "redis_port", "retry_policy", "routing_strategy_args", "stream_timeout",
        }
    )  # fmt: skip

    @property
    def strategy(self) -> Literal["simple-shuffle", "least-busy", "lowest-cost"]:
        return _STRATEGIES.get(self.routing_strategy, "simple-shuffle")  # type: ignore[return-value]


_TOP_LEVEL_LITELLM_ONLY = frozenset(
    {"callback_settings", "credential_list", "files_settings", "guardrails", "include", "mcp_servers",
     "search_tools", "vector_store_registry", "assistant_settings", "finetune_settings"}
)  # fmt: skip


class GatewayConfig(BaseModel):
    """The whole configuration. Build it with :func:`load_config` or :func:`parse_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_list: list[DeploymentConfig] = Field(default_factory=list)
    general_settings: GeneralSettings = GeneralSettings()
    litellm_settings: LitellmSettings = LitellmSettings()
    router_settings: RouterSettings = RouterSettings()
    environment_variables: dict[str, str] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """LiteLLM keys accepted but not implemented, one line each, for the start-up log."""

    @property
    def num_retries(self) -> int:
        for value in (self.router_settings.num_retries, self.litellm_settings.num_retries):
            if value is not None:
                return value
        return 2

    @property
    def timeout(self) -> float:
        for value in (self.router_settings.timeout, self.litellm_settings.request_timeout):
            if value is not None:
                return value
        return 600.0

    @property
    def fallbacks(self) -> dict[str, list[str]]:
        merged: dict[str, list[str]] = {}
        for rules in (self.litellm_settings.fallbacks or [], self.router_settings.fallbacks or []):
            for rule in rules:
                for group, targets in rule.items():
                    merged.setdefault(group, []).extend(t for t in targets if t not in merged.get(group, []))
        return merged

    @property
    def max_request_bytes(self) -> int:
        return int(Decimal(str(self.general_settings.max_request_size_mb)) * 1024 * 1024)

    @property
    def max_batch_file_bytes(self) -> int:
        return int(Decimal(str(self.general_settings.max_batch_file_size_mb)) * 1024 * 1024)


_SECTIONS: Mapping[str, type[_Section]] = {
    "general_settings": GeneralSettings,
    "litellm_settings": LitellmSettings,
    "router_settings": RouterSettings,
}
_DEPLOYMENT_LITELLM_ONLY = frozenset({"model_name", "litellm_params", "model_info", "tpm", "rpm"})


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, resolve and validate a YAML config file.

    Raises:
        ConfigurationError: unreadable file, bad YAML or a bad field (the message names it).
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigurationError(f"{p}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(raw if raw is not None else {}, environ=environ)


def parse_config(raw: object, *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate a config already parsed from YAML (see :func:`load_config`)."""
    if not isinstance(raw, dict):
        raise ConfigurationError("config: expected a mapping of sections (model_list, general_settings, …)")
    env = dict(os.environ if environ is None else environ)
    extra_env = raw.get("environment_variables") or {}
    if not isinstance(extra_env, dict):
        raise ConfigurationError("environment_variables: expected a mapping of NAME: value")
    env = {**{str(k): str(v) for k, v in extra_env.items()}, **env}
    warnings: list[str] = []
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TOP_LEVEL_LITELLM_ONLY:
            warnings.append(f"{key}: LiteLLM section not implemented by spendgate; ignored")
        elif key in GatewayConfig.model_fields and key != "warnings":
            data[key] = _resolve_env(value, key, env)
        else:
            raise ConfigurationError(f"{key}: unknown section (neither spendgate nor LiteLLM has it)")
    for name, section in _SECTIONS.items():
        value = data.get(name)
        if value is None:
            data.pop(name, None)
            continue
        if not isinstance(value, dict):
            raise ConfigurationError(f"{name}: expected a mapping")
        data[name] = _check_section(name, value, section, warnings)
    args = (data.get("general_settings") or {}).get("alerting_args")
    if isinstance(args, dict):
        data["general_settings"]["alerting_args"] = _check_section(
            "general_settings.alerting_args", args, AlertingArgs, warnings
        )
    cache = (data.get("litellm_settings") or {}).get("cache_params")
    if isinstance(cache, dict):
        data["litellm_settings"]["cache_params"] = _check_section(
            "litellm_settings.cache_params", cache, CacheParams, warnings
        )
    callbacks = (data.get("litellm_settings") or {}).get("callbacks")
    for name in callbacks if isinstance(callbacks, list) else ():
        if name != "otel":
            warnings.append(f"litellm_settings.callbacks: {name!r} not implemented by spendgate; ignored")
    general = dict(data.get("general_settings") or {})
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            general[key] = env[var]
    if general.get("upstream_http_client") == "fast":  # the hand-written client, removed
        general["upstream_http_client"] = "aiohttp"
        warnings.append("general_settings.upstream_http_client: 'fast' was removed; using 'aiohttp'")
    data["general_settings"] = general
    _budget_timezone(data, general)
    models = data.get("model_list") or []
    if isinstance(models, list):
        for i, entry in enumerate(models):
            if isinstance(entry, dict):
                _check_deployment(i, entry, warnings)
    strategy = (data.get("router_settings") or {}).get("routing_strategy")
    if isinstance(strategy, str) and strategy not in _STRATEGIES:
        warnings.append(
            f"router_settings.routing_strategy: {strategy!r} is not implemented; using simple-shuffle "
            f"(spendgate has {', '.join(sorted(_STRATEGIES))})"
        )
    try:
        config = GatewayConfig.model_validate({**data, "warnings": tuple(warnings)})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None
    _check_references(config)
    return config


def _budget_timezone(data: dict[str, Any], general: dict[str, Any]) -> None:
    """``general_settings.budget_reset_timezone`` becomes ``litellm_settings.timezone``
    (LiteLLM reads either); two different zones are an error that names both."""
    zone = general.get("budget_reset_timezone")
    if zone is None:
        return
    try:
        if not isinstance(zone, str):
            raise ValueError(f"expected an IANA zone name, got {zone!r}")
        get_timezone(zone)
    except ValueError as exc:
        raise ConfigurationError(f"general_settings.budget_reset_timezone: {exc}") from None
    settings = dict(data.get("litellm_settings") or {})
    other = settings.get("timezone")
    if other is not None and other != zone:
        raise ConfigurationError(
            f"general_settings.budget_reset_timezone ({zone!r}) and litellm_settings.timezone "
            f"({other!r}) differ: give one zone for budget calendars"
        )
    settings["timezone"] = zone
    data["litellm_settings"] = settings


def _check_section(
    name: str, value: dict[str, Any], section: type[_Section], warnings: list[str]
) -> dict[str, Any]:
    ignored = section.litellm_only
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if key in section.model_fields:
            kept[key] = item
        elif key in ignored:
            warnings.append(f"{name}.{key}: LiteLLM setting not implemented by spendgate; ignored")
        else:
            raise ConfigurationError(f"{name}.{key}: unknown setting (neither spendgate nor LiteLLM has it)")
    return kept


def _check_deployment(index: int, entry: dict[str, Any], warnings: list[str]) -> None:
    where = f"model_list[{index}]"
    for key in entry:
        if key not in _DEPLOYMENT_LITELLM_ONLY:
            raise ConfigurationError(
                f"{where}.{key}: unknown field (expected model_name, litellm_params, model_info)"
            )
    params = entry.get("litellm_params")
    if isinstance(params, dict):
        for key in params:
            if key not in LiteLLMParams.model_fields and not is_cost_field(key):
                warnings.append(f"{where}.litellm_params.{key}: not used by spendgate; ignored")


def _check_references(config: GatewayConfig) -> None:
    groups = {d.model_name for d in config.model_list}
    for source, targets in config.fallbacks.items():
        for target in (source, *targets):
            if target not in groups:
                raise ConfigurationError(
                    f"router_settings.fallbacks: {target!r} is not a model_name in model_list"
                )
    seen: dict[str, int] = {}
    for i, d in enumerate(config.model_list):
        ident = d.model_info.id
        if ident is not None:
            if ident in seen:
                raise ConfigurationError(
                    f"model_list[{i}].model_info.id: {ident!r} is already the id of model_list[{seen[ident]}]"
                )
            seen[ident] = i


def _resolve_env(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(_ENV_PREFIX):
        name = value[len(_ENV_PREFIX) :]
        if name not in env:
            raise ConfigurationError(f"{path}: environment variable {name} is not set")
        return env[name]
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        lines.append(f"{path or 'config'}: {err['msg']}")
    return "; ".join(lines)

"""Where alerts go: the channels built from the config and the environment (LiteLLM's names).

``general_settings.alerting`` lists the channel kinds; each reads its destination and
secrets from the environment, as LiteLLM's do (or from ``environment_variables``):

- ``slack``: ``SLACK_WEBHOOK_URL`` (else ``ALERTING_WEBHOOK_URL``); ``alert_to_webhook_url``
  sends an alert type to its own Slack URL(s) instead (channel ``slack:<type>:<n>``);
- ``webhook``: ``WEBHOOK_URL``, signed with ``alerting_args.webhook_secret`` or
  ``$SPENDGATE_WEBHOOK_SECRET`` (``whsec_`` + base64; unsigned, with a warning, without one);
- ``email``: ``SMTP_HOST``, ``SMTP_PORT`` (587), ``SMTP_USERNAME``, ``SMTP_PASSWORD``,
  ``SMTP_SENDER_EMAIL``, ``SMTP_TLS`` (STARTTLS, default true; port 465 is implicit TLS),
  to ``alerting_args.email_recipients`` (else ``$SPENDGATE_ALERT_EMAILS``).

The outbox stores only a channel's id (``slack``, ``webhook``, ``email``,
``slack:budget_alerts:0``), never its URL or password: the sender looks the channel up here
when it sends. A bad value is a :class:`~spendgate.errors.ConfigurationError` naming the key
or variable.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Literal

from spendgate.alerts.model import ALERT_GROUPS, KINDS
from spendgate.config import AlertingArgs, GatewayConfig
from spendgate.errors import ConfigurationError

__all__ = [
    "LITELLM_ALERT_TYPES",
    "AlertRouting",
    "EmailChannel",
    "SenderPolicy",
    "SlackChannel",
    "WebhookChannel",
    "routing_from_config",
]

LITELLM_ALERT_TYPES = frozenset(
    {
        "llm_exceptions", "llm_too_slow", "llm_requests_hanging", "budget_alerts", "spend_reports",
        "failed_tracking_spend", "db_exceptions", "daily_reports", "cooldown_deployment",
        "new_model_added", "outage_alerts", "region_outage_alerts", "fallback_reports",
        "new_virtual_key_created", "virtual_key_created", "virtual_key_updated", "virtual_key_deleted",
        "new_team_created", "team_updated", "team_deleted", "new_internal_user_created",
        "internal_user_updated", "internal_user_deleted", "projected_limit_exceeded",
    }
)  # fmt: skip
"""LiteLLM's ``alert_types``; those spendgate does not send are accepted with a warning."""

_URL = re.compile(r"^https?://[^/\s]+")


@dataclass(frozen=True, slots=True)
class SlackChannel:
    """A Slack incoming webhook (its URL carries a token: never logged)."""

    id: str
    url: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    """A generic JSON webhook, signed per Standard Webhooks when ``secret`` is set."""

    id: str
    url: str = field(repr=False)
    secret: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class EmailChannel:
    """Email over SMTP."""

    id: str
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)


Channel = SlackChannel | WebhookChannel | EmailChannel


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """How the sender job drains the outbox (``alerting_args``; tests pass their own)."""

    interval_seconds: float = 5.0
    timeout_seconds: float = 10.0
    lease_seconds: float = 120.0
    retry_hours: float = 24.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 1800.0
    batch_size: int = 100
    concurrency: int = 8

    @classmethod
    def from_args(cls, args: AlertingArgs) -> SenderPolicy:
        return cls(
            interval_seconds=args.send_interval_seconds,
            timeout_seconds=args.request_timeout_seconds,
            lease_seconds=max(args.claim_lease_seconds, 3 * args.request_timeout_seconds),
            retry_hours=args.retry_hours,
            retry_base_seconds=args.retry_base_seconds,
            retry_max_seconds=args.retry_max_seconds,
        )


@dataclass(frozen=True, slots=True)
class AlertRouting:
    """The configured channels and which alerts each takes."""

    channels: Mapping[str, Channel] = field(default_factory=dict)
    routes: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    """channel id → the alert types / kinds it takes (None: every kind)."""
    thresholds: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
    dashboard_url: str | None = None
    policy: SenderPolicy = SenderPolicy()
    warnings: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def channels_for(self, kind: str) -> list[str]:
        """The ids of the channels that take an alert of ``kind`` (a ``test`` goes to every
        channel), in a stable order."""
        group = ALERT_GROUPS.get(kind, kind)
        out = []
        for channel_id in sorted(self.channels):
            taken = self.routes.get(channel_id)
            if kind == "test" or taken is None or kind in taken or group in taken:
                out.append(channel_id)
        return out


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def _url(value: str | None, where: str) -> str:
    if value is None:
        raise ConfigurationError(f"{where}: not set (needed by general_settings.alerting)")
    if not _URL.match(value):
        raise ConfigurationError(f"{where}: expected an http(s) URL")  # the value may hold a token
    return value


def _secret(text: str, where: str) -> bytes:
    raw = text.removeprefix("whsec_")
    try:
        secret = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where}: expected whsec_ followed by base64") from None
    if len(secret) < 16:
        raise ConfigurationError(f"{where}: the secret is shorter than 16 bytes")
    return secret


def _flag(value: str | None, where: str, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{where}: expected true or false, got {value!r}")


def _sender(value: str | None) -> str:
    """``SMTP_SENDER_EMAIL`` parsed as an address (``a@b`` or ``Name <a@b>``): an inner
    newline would break the From header of every alert email, so it is refused at start."""
    error = ConfigurationError("SMTP_SENDER_EMAIL: expected an email address (the From of alert emails)")
    if value is None or "@" not in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise error
    name, spec = parseaddr(value)
    try:
        Address(display_name=name, addr_spec=spec or value)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise error from exc
    return value


def _email(args: AlertingArgs, environ: Mapping[str, str]) -> EmailChannel:
    host = _env(environ, "SMTP_HOST")
    if host is None:
        raise ConfigurationError("SMTP_HOST: not set (needed by general_settings.alerting: email)")
    port_text = _env(environ, "SMTP_PORT") or "587"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"SMTP_PORT: expected a port number, got {port_text!r}")
    port = int(port_text)
    sender = _sender(_env(environ, "SMTP_SENDER_EMAIL"))
    recipients = list(args.email_recipients)
    where = "general_settings.alerting_args.email_recipients"
    if not recipients and _env(environ, "SPENDGATE_ALERT_EMAILS"):
        recipients = [r.strip() for r in environ["SPENDGATE_ALERT_EMAILS"].split(",") if r.strip()]
        where = "SPENDGATE_ALERT_EMAILS"
    if not recipients:
        raise ConfigurationError(f"{where}: no recipients for alert emails")
    for address in recipients:
        if "@" not in address or any(c.isspace() for c in address):
            raise ConfigurationError(f"{where}: {address!r} is not an email address")
    tls = _flag(_env(environ, "SMTP_TLS"), "SMTP_TLS", True)
    security: Literal["starttls", "tls", "none"] = "tls" if port == 465 else ("starttls" if tls else "none")
    return EmailChannel(
        "email",
        host,
        port,
        sender,
        tuple(recipients),
        security,
        _env(environ, "SMTP_USERNAME"),
        _env(environ, "SMTP_PASSWORD"),
    )


def _alert_types(types: list[str] | None, warnings: list[str]) -> frozenset[str] | None:
    if types is None:
        return None
    known = set(KINDS) | set(ALERT_GROUPS.values())
    for i, name in enumerate(types):
        if name in known:
            continue
        if name in LITELLM_ALERT_TYPES:
            warnings.append(f"general_settings.alert_types[{i}]: {name!r} is not sent by spendgate")
            continue
        raise ConfigurationError(
            f"general_settings.alert_types[{i}]: unknown alert type {name!r} "
            f"(spendgate sends {', '.join(sorted(known - {'test'}))})"
        )
    return frozenset(types)


def routing_from_config(config: GatewayConfig, environ: Mapping[str, str]) -> AlertRouting:
    """The channels of ``config`` (its ``environment_variables`` under ``environ``, as for
    the rest of the config).

    Raises:
        ConfigurationError: a missing or bad setting, named (never with a secret's value).
    """
    env = {**config.environment_variables, **environ}
    general = config.general_settings
    args = general.alerting_args
    warnings: list[str] = []
    types = _alert_types(general.alert_types, warnings)
    channels: dict[str, Channel] = {}
    routes: dict[str, frozenset[str] | None] = {}
    kinds = set(general.alerting)
    if general.alerting_threshold is not None:
        warnings.append(
            "general_settings.alerting_threshold: spendgate sends no slow-request alerts; ignored"
        )
    if "slack" in kinds:
        overridden: set[str] = set()
        for alert_type, urls in sorted(general.alert_to_webhook_url.items()):
            where = f"general_settings.alert_to_webhook_url.{alert_type}"
            if alert_type not in set(KINDS) | set(ALERT_GROUPS.values()) | LITELLM_ALERT_TYPES:
                raise ConfigurationError(f"{where}: unknown alert type {alert_type!r}")
            for n, url in enumerate([urls] if isinstance(urls, str) else urls):
                channel_id = f"slack:{alert_type}:{n}"
                channels[channel_id] = SlackChannel(channel_id, _url(url, f"{where}[{n}]"))
                routes[channel_id] = (
                    frozenset({alert_type}) & types if types is not None else frozenset({alert_type})
                )
            overridden.add(alert_type)
        default = _env(env, "SLACK_WEBHOOK_URL") or _env(env, "ALERTING_WEBHOOK_URL")
        if default is not None or not overridden:
            channels["slack"] = SlackChannel("slack", _url(default, "SLACK_WEBHOOK_URL"))
            taken = types if types is not None else frozenset(KINDS) | frozenset(ALERT_GROUPS.values())
            # A type sent to its own URLs is not also sent to the default one (LiteLLM's rule).
            rest = {t for t in taken if t not in overridden and ALERT_GROUPS.get(t) not in overridden}
            routes["slack"] = None if types is None and not overridden else frozenset(rest)
    if "webhook" in kinds:
        secret_text = args.webhook_secret or _env(env, "SPENDGATE_WEBHOOK_SECRET")
        where = (
            "general_settings.alerting_args.webhook_secret"
            if args.webhook_secret
            else "SPENDGATE_WEBHOOK_SECRET"
        )
        secret = _secret(secret_text, where) if secret_text else None
        if secret is None:
            warnings.append(
                "webhook alerts are not signed: set alerting_args.webhook_secret or SPENDGATE_WEBHOOK_SECRET"
            )
        channels["webhook"] = WebhookChannel("webhook", _url(_env(env, "WEBHOOK_URL"), "WEBHOOK_URL"), secret)
        routes["webhook"] = types
    if "email" in kinds:
        channels["email"] = _email(args, env)
        routes["email"] = types
    if args.dashboard_url is not None and not _URL.match(args.dashboard_url):
        raise ConfigurationError("general_settings.alerting_args.dashboard_url: expected an http(s) URL")
    return AlertRouting(
        channels=channels,
        routes=routes,
        thresholds=tuple(args.budget_thresholds),
        dashboard_url=args.dashboard_url,
        policy=SenderPolicy.from_args(args),
        warnings=tuple(warnings),
    )

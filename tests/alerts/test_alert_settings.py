"""Alert configuration: LiteLLM's keys and environment variables; errors name the key or
variable (never a secret's value)."""

from __future__ import annotations

from typing import Any

import pytest
from alert_receivers import WHSEC

from spendgate.alerts import routing_from_config
from spendgate.alerts.settings import EmailChannel, SlackChannel, WebhookChannel
from spendgate.config import parse_config
from spendgate.errors import ConfigurationError

SLACK = "https://hooks.slack.com/services/T1/B1/secret-token"
ENV = {
    "SLACK_WEBHOOK_URL": SLACK,
    "WEBHOOK_URL": "https://receiver.example.test/hook",
    "SMTP_HOST": "smtp.example.test",
    "SMTP_PORT": "2525",
    "SMTP_USERNAME": "alerts",
    "SMTP_PASSWORD": "smtp-password",
    "SMTP_SENDER_EMAIL": "alerts@example.test",
    "SMTP_TLS": "False",
    "SPENDGATE_WEBHOOK_SECRET": WHSEC,
    "SPENDGATE_ALERT_EMAILS": "a@example.test, b@example.test",
}


def _general(**settings: Any) -> dict[str, Any]:
    return {"general_settings": {"alerting": ["slack", "webhook", "email"], **settings}}


def test_litellm_config_and_environment() -> None:
    config = parse_config(
        _general(
            alert_types=["budget_alerts", "llm_exceptions"],
            alerting_threshold=300,
            alerting_args={
                "budget_alert_ttl": 86400,
                "budget_thresholds": [90, 50],
                "dashboard_url": "https://ui.test",
            },
        ),
        environ={},
    )
    assert any(
        w.startswith("general_settings.alerting_args.budget_alert_ttl: LiteLLM") for w in config.warnings
    )
    route = routing_from_config(config, ENV)
    assert sorted(route.channels) == ["email", "slack", "webhook"]
    slack, hook, email = route.channels["slack"], route.channels["webhook"], route.channels["email"]
    assert isinstance(slack, SlackChannel) and slack.url == SLACK
    assert isinstance(hook, WebhookChannel) and hook.secret == b"spendgate-test-secret-0123456789"
    assert isinstance(email, EmailChannel)
    assert (email.host, email.port, email.security, email.username) == (
        "smtp.example.test",
        2525,
        "none",
        "alerts",
    )
    assert email.recipients == ("a@example.test", "b@example.test")
    assert [str(t) for t in route.thresholds] == ["50", "90"]
    assert route.dashboard_url == "https://ui.test"
    assert route.channels_for("budget_crossed") == ["email", "slack", "webhook"]
    assert route.channels_for("unpriced_usage") == []  # not in alert_types
    assert route.channels_for("test") == ["email", "slack", "webhook"]
    assert any("llm_exceptions" in w for w in route.warnings)
    assert any("alerting_threshold" in w for w in route.warnings)
    # Secrets stay out of reprs (and so out of logs that print a channel).
    assert SLACK not in repr(route) and "smtp-password" not in repr(route) and "secret" not in repr(hook)


def test_environment_variables_section_and_alert_to_webhook_url() -> None:
    config = parse_config(
        {
            "environment_variables": {"SLACK_WEBHOOK_URL": SLACK},
            "general_settings": {
                "alerting": ["slack"],
                "alert_to_webhook_url": {
                    "budget_alerts": ["https://hooks.slack.com/a", "https://hooks.slack.com/b"]
                },
            },
        },
        environ={},
    )
    route = routing_from_config(config, {})
    assert sorted(route.channels) == ["slack", "slack:budget_alerts:0", "slack:budget_alerts:1"]
    assert route.channels_for("budget_crossed") == ["slack:budget_alerts:0", "slack:budget_alerts:1"]
    assert route.channels_for("unpriced_usage") == ["slack"]


def test_no_alerting_no_channels() -> None:
    route = routing_from_config(parse_config({}, environ={}), {})
    assert not route.enabled and route.channels_for("budget_crossed") == []


@pytest.mark.parametrize(
    ("settings", "env", "named"),
    [
        ({"alerting": ["pagerduty"]}, {}, "general_settings.alerting[0]"),
        (
            {"alerting_args": {"budget_thresholds": [0]}},
            {},
            "general_settings.alerting_args.budget_thresholds",
        ),
        ({"alerting_args": {"no_such": 1}}, {}, "general_settings.alerting_args.no_such"),
        ({"alerting_threshold": -1}, {}, "general_settings.alerting_threshold"),
        *(
            ({"alerting_args": {key: value}}, {}, f"general_settings.alerting_args.{key}")
            for key, value in [
                ("request_timeout_seconds", float("inf")),
                ("request_timeout_seconds", 301),
                ("send_interval_seconds", float("inf")),
                ("send_interval_seconds", 3601),
                ("retry_hours", 1e300),
                ("retry_hours", float("nan")),
                ("retry_max_seconds", float("inf")),
                ("retry_max_seconds", 86401),
                ("retry_base_seconds", float("inf")),
                ("claim_lease_seconds", float("nan")),
                ("claim_lease_seconds", 86401),
                ("claim_lease_seconds", 10),  # not longer than the 10 s timeout
            ]
        ),
    ],
)
def test_bad_config_names_the_key(settings: dict[str, Any], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"general_settings": settings}, environ=env)


@pytest.mark.parametrize(
    ("settings", "drop", "change", "named"),
    [
        ({}, "SLACK_WEBHOOK_URL", {}, "SLACK_WEBHOOK_URL"),
        ({}, None, {"SLACK_WEBHOOK_URL": "not-a-url"}, "SLACK_WEBHOOK_URL"),
        ({}, "WEBHOOK_URL", {}, "WEBHOOK_URL"),
        ({}, None, {"SPENDGATE_WEBHOOK_SECRET": "whsec_!!"}, "SPENDGATE_WEBHOOK_SECRET"),
        ({"alerting_args": {"webhook_secret": "whsec_c2hvcnQ="}}, None, {}, "alerting_args.webhook_secret"),
        ({}, "SMTP_HOST", {}, "SMTP_HOST"),
        ({}, None, {"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({}, None, {"SMTP_TLS": "maybe"}, "SMTP_TLS"),
        ({}, "SMTP_SENDER_EMAIL", {}, "SMTP_SENDER_EMAIL"),
        ({}, "SPENDGATE_ALERT_EMAILS", {}, "alerting_args.email_recipients"),
        ({"alert_types": ["budget_alerts", "nonsense"]}, None, {}, r"alert_types\[1\]"),
        ({"alert_to_webhook_url": {"nonsense": "https://x.test"}}, None, {}, "alert_to_webhook_url.nonsense"),
        ({"alerting_args": {"dashboard_url": "ftp://x"}}, None, {}, "alerting_args.dashboard_url"),
    ],
)
def test_bad_channel_settings_name_the_key(
    settings: dict[str, Any], drop: str | None, change: dict[str, str], named: str
) -> None:
    env = {k: v for k, v in ENV.items() if k != drop} | change
    config = parse_config(_general(**settings), environ={})
    with pytest.raises(ConfigurationError, match=named) as info:
        routing_from_config(config, env)
    assert "secret-token" not in str(info.value) and "smtp-password" not in str(info.value)


def test_unsigned_webhook_is_a_warning_and_port_465_is_tls() -> None:
    env = {k: v for k, v in ENV.items() if k != "SPENDGATE_WEBHOOK_SECRET"} | {"SMTP_PORT": "465"}
    route = routing_from_config(parse_config(_general(), environ={}), env)
    hook, email = route.channels["webhook"], route.channels["email"]
    assert isinstance(hook, WebhookChannel) and hook.secret is None
    assert any("not signed" in w for w in route.warnings)
    assert isinstance(email, EmailChannel) and email.security == "tls"

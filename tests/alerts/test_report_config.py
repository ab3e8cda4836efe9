"""The configured spend reports: resolved against the alert channels at start, a bad one
refused with its key named; the gateway runs the report scheduler when reports exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spendgate.alerts import routing_from_config
from spendgate.config import GatewayConfig, parse_config
from spendgate.errors import ConfigurationError
from spendgate.jobs.report_scheduler import global_budget_of, report_specs
from spendgate.server import Services, build_app

ENV = {
    "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/slack",
    "WEBHOOK_URL": "http://127.0.0.1:9/hook",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_SENDER_EMAIL": "reports@example.test",
    "SPENDGATE_ALERT_EMAILS": "finance@example.test",
}


def _config(general: dict[str, Any], reports: list[dict[str, Any]], **sections: Any) -> GatewayConfig:
    args = {**general.pop("alerting_args", {}), "spend_reports": reports}
    return parse_config({"general_settings": {**general, "alerting_args": args}, **sections}, environ=ENV)


def _specs(config: GatewayConfig) -> list[Any]:
    return report_specs(config, routing_from_config(config, ENV))


def test_a_report_goes_to_every_configured_channel_by_default() -> None:
    config = _config(
        {"alerting": ["slack", "webhook", "email"]},
        [
            {"name": "daily", "frequency": "daily"},
            {
                "name": "teams",
                "frequency": "weekly",
                "scope": "team",
                "team_ids": ["t1", "t2", "t1"],
                "timezone": "Asia/Kolkata",
                "channels": ["email"],
                "top_n": 3,
                "lookback_periods": 2,
            },
        ],
        litellm_settings={"timezone": "Europe/Berlin", "max_budget": "12.5", "budget_duration": "1mo"},
    )
    daily, teams = _specs(config)
    assert (daily.channels, daily.timezone, daily.team_ids, daily.lookback) == (
        ("email", "slack", "webhook"),
        "Europe/Berlin",
        None,
        1,
    )
    assert daily.breakdowns == ("model", "key", "team") and daily.top_n == 5
    assert daily.grace.total_seconds() == 300 and daily.window.unit == "day"
    assert (teams.channels, teams.timezone, teams.team_ids, teams.top_n) == (
        ("email",),
        "Asia/Kolkata",
        ("t1", "t2"),
        3,
    )
    assert teams.window.unit == "week" and teams.lookback == 2
    budget = global_budget_of(config)
    assert budget is not None and (budget.max_nanos, budget.duration) == (12_500_000_000, "1mo")


def test_alert_to_webhook_url_sends_reports_to_their_own_slack_url() -> None:
    config = _config(
        {"alerting": ["slack", "webhook"], "alert_to_webhook_url": {"spend_reports": "http://127.0.0.1:9/r"}},
        [{"name": "daily", "frequency": "daily"}],
    )
    (daily,) = _specs(config)
    assert daily.channels == ("slack:spend_reports:0", "webhook")


@pytest.mark.parametrize(
    ("general", "report", "error"),
    [
        ({}, {}, "spend_reports[0]: no alert channel is configured"),
        ({"alerting": ["webhook"]}, {"channels": ["email"]}, "spend_reports[0].channels: 'email' is not in"),
        (
            {"alerting": ["webhook"], "alert_types": ["budget_alerts"]},
            {},
            "spend_reports[0].channels: no configured channel takes spend reports",
        ),
        ({"alerting": ["webhook"]}, {"timezone": "Mars/Olympus"}, "spend_reports[0].timezone"),
        ({"alerting": ["webhook"]}, {"frequency": "hourly"}, "spend_reports[0].frequency"),
        ({"alerting": ["webhook"]}, {"name": "a b"}, "spend_reports[0].name"),
        ({"alerting": ["webhook"]}, {"scope": "team"}, "scope team needs team_ids"),
        ({"alerting": ["webhook"]}, {"team_ids": ["t1"]}, "team_ids needs scope: team"),
        ({"alerting": ["webhook"]}, {"top_n": 0}, "spend_reports[0].top_n"),
        ({"alerting": ["webhook"]}, {"lookback_periods": 0}, "spend_reports[0].lookback_periods"),
        ({"alerting": ["webhook"]}, {"grace_seconds": float("inf")}, "spend_reports[0].grace_seconds"),
        ({"alerting": ["webhook"]}, {"breakdowns": ["tag"]}, "spend_reports[0].breakdowns"),
    ],
)
def test_a_bad_report_is_refused_naming_its_key(
    general: dict[str, Any], report: dict[str, Any], error: str
) -> None:
    with pytest.raises(
        ConfigurationError, match=error.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        _specs(_config(general, [{"name": "daily", "frequency": "daily", **report}]))


def test_two_reports_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="two reports are named 'daily'"):
        _config({"alerting": ["webhook"]}, [{"name": "daily", "frequency": "daily"}] * 2)


async def test_the_gateway_runs_the_report_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    general = {
        "master_key": "sk-master-reports",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'spendgate.db'}",
        "journal_dir": str(tmp_path / "journal"),
        "alerting": ["webhook"],
        "alerting_args": {"report_check_interval_seconds": 30},
    }
    app = build_app(_config(general, [{"name": "daily", "frequency": "daily"}]))
    async with app.starlette.router.lifespan_context(app.starlette):
        services: Services = app.state.services
        jobs = {job.name: job for job in services.jobs.jobs}
        assert "spend-reports" in jobs and jobs["spend-reports"].interval == 30
    bad = _config({**general, "alerting": []}, [{"name": "daily", "frequency": "daily"}])
    with pytest.raises(ConfigurationError, match="no alert channel is configured"):
        build_app(bad)


def test_hostile_names_in_a_report_are_shown_as_typed() -> None:
    from datetime import UTC, datetime

    from spendgate.alerts.email import alert_email
    from spendgate.alerts.settings import EmailChannel
    from spendgate.alerts.slack import slack_message
    from spendgate.alerts.spend_report import Breakdown, ReportLine, SpendReport

    hostile = "<!here> & <https://evil.test|ok>\r\nBcc: evil@x.test"
    report = SpendReport(
        name="daily", frequency="daily", timezone="UTC", scope_type="team", scope_id="t1",
        scope_name=hostile, period_start=datetime(2026, 3, 10, tzinfo=UTC),
        period_end=datetime(2026, 3, 11, tzinfo=UTC), spend_nanos=3, requests=1, failed_requests=0,
        input_tokens=1, output_tokens=1, previous_spend_nanos=0, previous_requests=0,
        breakdowns=(Breakdown("key", (ReportLine("k", hostile, 3, 1, 2),)),),
    )  # fmt: skip
    alert = report.alert()
    body = slack_message(alert, "alert_x", link="https://spendgate.example.test")
    texts = [body["text"], *(str(b) for b in body["blocks"][1:])]
    assert all("<!here>" not in t and "<https" not in t for t in texts)
    assert "&lt;!here&gt; &amp;" in str(body["blocks"]) and body["blocks"][-1]["type"] == "actions"
    assert "no spend in the previous day" in str(body["blocks"])
    channel = EmailChannel("email", "127.0.0.1", 25, "r@example.test", ("f@example.test",), "none")
    message = alert_email(channel, alert, "alert_x", "msg_x", datetime.now(UTC), None)
    assert "\n" not in str(message["Subject"]) and message["Bcc"] is None
    html = message.get_body(("html",))
    assert html is not None and "<!here>" not in html.get_content() and "&lt;!here&gt;" in html.get_content()
    assert report.message.startswith(f"Team {hostile[:5]}")


def test_a_report_message_keeps_the_alias_as_written() -> None:
    from datetime import UTC, datetime

    from spendgate.alerts.spend_report import SpendReport

    report = SpendReport(
        name="weekly", frequency="weekly", timezone="Asia/Kolkata", scope_type="team", scope_id="t1",
        scope_name="ML-Research", period_start=datetime(2026, 3, 8, 18, 30, tzinfo=UTC),
        period_end=datetime(2026, 3, 15, 18, 30, tzinfo=UTC), spend_nanos=12_500_000_000, requests=40,
        failed_requests=0, input_tokens=1, output_tokens=1, previous_spend_nanos=10_000_000_000,
        previous_requests=30,
    )  # fmt: skip
    assert report.title == "Weekly spend report: team ML-Research, 2026-03-09 – 2026-03-15"
    assert report.message == (
        "Team ML-Research spent $12.50 over 40 requests on 2026-03-09 – 2026-03-15 (Asia/Kolkata); "
        "+25.0% vs the previous week ($10.00)."
    )

"""``spendgate cost`` and ``spendgate prices`` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from spendgate.cli import _register, app

_register()
runner = CliRunner()


def test_cost_json() -> None:
    result = runner.invoke(
        app, ["cost", "--model", "gpt-4o", "--input", "1000", "--output", "500", "--cached", "600", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total"] == "0.00675" and data["total_nanos"] == 6_750_000
    assert data["resolved_model"] == "openai/gpt-4o"


def test_cost_table_and_batch() -> None:
    result = runner.invoke(app, ["cost", "-m", "gpt-4o", "-i", "1000", "-o", "500", "--batch"])
    assert result.exit_code == 0, result.output
    assert "$0.00375" in result.output and "batch" in result.output


def test_cost_unknown_model_is_an_error_not_zero() -> None:
    result = runner.invoke(app, ["cost", "-m", "no-such-model-xyz", "-i", "10"])
    assert result.exit_code == 1
    assert "unpriced" in result.output and "$0" not in result.output


def test_cost_bad_input_gets_a_clear_error() -> None:
    result = runner.invoke(app, ["cost", "-m", "gpt-4o", "-i", "10", "--cached", "20"])
    assert result.exit_code == 2
    assert "cannot exceed --input" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["cost", "-m", "gpt-4o", "-i", "-5"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_prices_show_and_search() -> None:
    result = runner.invoke(app, ["prices", "show", "claude-sonnet-4-5"])
    assert result.exit_code == 0, result.output
    assert "anthropic/claude-sonnet-4-5" in result.output and "$3 / 1M tokens" in result.output
    result = runner.invoke(app, ["prices", "search", "gemini-2.5-pro"])
    assert result.exit_code == 0 and "gemini/gemini-2.5-pro" in result.output


def test_prices_import_and_diff(tmp_path: Path) -> None:
    src = tmp_path / "litellm.json"
    src.write_text(
        json.dumps(
            {
                "my-model": {
                    "litellm_provider": "openai",
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                    "mode": "chat",
                }
            }
        )
    )
    out = tmp_path / "overrides.json"
    result = runner.invoke(app, ["prices", "import", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["format"] == "spendgate-catalogue/1"
    result = runner.invoke(
        app, ["cost", "-m", "my-model", "-i", "1000", "-o", "1000", "--prices", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total"] == "0.003"

    src.write_text(
        json.dumps(
            {
                "my-model": {
                    "litellm_provider": "openai",
                    "input_cost_per_token": 2e-6,
                    "output_cost_per_token": 2e-6,
                    "mode": "chat",
                }
            }
        )
    )
    out2 = tmp_path / "overrides2.json"
    assert runner.invoke(app, ["prices", "import", str(src), "-o", str(out2)]).exit_code == 0
    result = runner.invoke(app, ["prices", "diff", str(out), str(out2)])
    assert result.exit_code == 0, result.output
    assert "input" in result.output and "1 changed" in result.output


def test_prices_import_refuses_bad_files(tmp_path: Path) -> None:
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({"m": {"litellm_provider": "openai", "input_cost_per_token": "lots"}}))
    result = runner.invoke(app, ["prices", "import", str(src), "-o", str(tmp_path / "o.json")])
    assert result.exit_code == 2 and "input_cost_per_token" in result.output
    assert not (tmp_path / "o.json").exists()


def test_prices_show_labels_every_rate_with_its_tier_and_prompt_size() -> None:
    result = runner.invoke(app, ["prices", "show", "gpt-5.4"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    rows = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    # declared rates: rate, tier, prompt size, price
    assert "input batch > 272,000 $2.5 / 1M tokens" in rows
    assert "output priority ≤ 272,000 $30 / 1M tokens" in rows
    assert "cache_read flex ≤ 272,000 $0.13 / 1M tokens" in rows
    # billed table: one column per tier; long batch reasoning at the long batch output rate
    assert "reasoning > 272,000 $22.5 $11.25 $11.25 $45" in rows


def test_prices_show_json_has_the_billed_table() -> None:
    result = runner.invoke(app, ["prices", "show", "gemini/gemini-2.5-pro", "--json"])
    assert result.exit_code == 0, result.output
    billed = json.loads(result.output)["prices"][-1]["billed"]
    assert set(billed) == {"standard", "batch", "flex", "priority"}
    assert billed["flex"]["> 200,000"]["input"] == "0.00000125"
    assert billed["batch"]["> 200,000"]["reasoning"] == "0.0000075"


def test_prices_show_prints_a_zero_rate_as_0_dollars() -> None:
    result = runner.invoke(app, ["prices", "show", "openrouter/qwq-32b:free"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "$0 / 1M tokens" in result.output
    assert "$ / 1M" not in result.output and "$0.000" not in result.output  # issue #17 item 7

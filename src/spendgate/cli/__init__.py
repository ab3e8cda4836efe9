"""The ``spendgate`` command. Each command group lives in its own module."""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="spendgate",
    help="Price LLM calls exactly, enforce budgets and report spend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module, attribute, group name or None for top-level commands). Imported lazily so
# `spendgate --help` stays fast and a missing optional part never breaks the others.
_GROUPS: tuple[tuple[str, str | None], ...] = (
    ("spendgate.cli.cost", None),
    ("spendgate.cli.prices", "prices"),
    ("spendgate.cli.db", "db"),
    ("spendgate.cli.spend", "spend"),
    ("spendgate.cli.mock", None),
    ("spendgate.cli.serve", None),
    ("spendgate.cli.keys", "keys"),
    ("spendgate.cli.teams", "teams"),
    ("spendgate.cli.users", "users"),
    ("spendgate.cli.budget", "budget"),
    ("spendgate.cli.batches", "batches"),
    ("spendgate.cli.alerts", "alerts"),
)


def _register() -> None:
    for module_name, group in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


def main() -> None:
    _register()
    app()

"""``spendgate serve``: run the gateway (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spendgate.cli._output import err_console, fail
from spendgate.errors import ConfigurationError

if TYPE_CHECKING:
    from spendgate.config import GatewayConfig

__all__ = ["MOCK_URL_ENV", "create_app", "register"]

_CONFIG_ENV = "SPENDGATE_CONFIG"
MOCK_URL_ENV = "SPENDGATE_MOCK_URL"
"""Set by ``--mock-provider`` to the mock's URL: a config's ``os.environ/SPENDGATE_MOCK_URL``
follows the port (examples/config.yaml does)."""


def create_app() -> object:
    """The app factory each uvicorn worker calls (the config path comes from ``$SPENDGATE_CONFIG``)."""
    import gc

    from spendgate.config import load_config
    from spendgate.gateway.logs import install_access_log_redaction
    from spendgate.server import build_app

    install_access_log_redaction()  # in each worker, after uvicorn configured its logging
    app = build_app(load_config(os.environ[_CONFIG_ENV]))
    # What start-up loaded (the price catalogue is a large object graph) lives as long as
    # the process: move it out of the collector's reach, so a full collection under load
    # does not walk it every time (a pause of milliseconds, straight into the p99).
    gc.collect()
    gc.freeze()
    return app


def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="The YAML config (LiteLLM style).")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 4000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    graceful_timeout: Annotated[
        int,
        typer.Option(
            min=0,
            help="On SIGTERM/SIGINT, seconds to let requests in flight finish; then they are "
            "answered 503 (shutting_down) and the spend recorder is flushed.",
        ),
    ] = 30,
    mock_provider: Annotated[
        int | None,
        typer.Option(
            help="Also run the mock provider on this port, and set $SPENDGATE_MOCK_URL to it "
            "(examples/config.yaml's models point there)."
        ),
    ] = None,
) -> None:
    """Run the gateway: an OpenAI- and Anthropic-compatible proxy that prices and records every call."""
    from spendgate.config import load_config

    with contextlib.ExitStack() as stack:
        if mock_provider is not None:
            from spendgate.providers.mock import run_mock_provider

            mock = stack.enter_context(run_mock_provider(port=mock_provider))
            os.environ[MOCK_URL_ENV] = mock.base_url  # before the config is read (workers inherit it)
            err_console.print(f"mock provider on {mock.url}", highlight=False)
        try:
            loaded = load_config(config)  # validate before forking workers: errors name the field
            _check_database_url(loaded)
        except ConfigurationError as exc:
            fail(str(exc))
        # The config's warnings are logged once per process by the app (spendgate.server).
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        os.environ[_CONFIG_ENV] = str(config.resolve())
        if workers > 1 and loaded.general_settings.run_migrations:
            _migrate(loaded)  # once, here: workers starting together must not race on the schema
        if loaded.general_settings.metrics_enabled and (
            workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        ):
            from spendgate.metrics import prepare_multiprocess_dir

            # Before the workers start: each imports prometheus-client in multiprocess mode.
            # One worker with the variable set is in multiprocess mode too (the exporter
            # sums the directory), so last run's files must go then as well.
            stack.callback(prepare_multiprocess_dir())
        _banner(host, port, workers, loaded)
        _run(host, port, workers, log_level, access_log, graceful_timeout)


def _check_database_url(config: GatewayConfig) -> None:
    """A database URL that cannot be used stops the start with one line (not a traceback
    from the lifespan), e.g. a file path where a URL belongs."""
    from spendgate.stores.database import database_url, masked_url

    try:
        masked_url(database_url(config.general_settings.database_url))
    except ConfigurationError as exc:
        raise ConfigurationError(f"general_settings.database_url: {exc}") from None
    except ValueError as exc:  # an unsupported driver
        raise ConfigurationError(f"general_settings.database_url: {exc}") from None


def _migrate(config: GatewayConfig) -> None:
    import asyncio

    from spendgate.stores.database import create_engine, database_url, upgrade

    async def run() -> None:
        engine = create_engine(database_url(config.general_settings.database_url))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _banner(host: str, port: int, workers: int, config: GatewayConfig) -> None:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    # The master key is never printed (logs keep stderr): the operator knows it.
    key = "<master key>" if config.general_settings.master_key else "anything"
    model = config.model_list[0].model_name if config.model_list else "gpt-4o"
    err_console.print(
        f"spendgate gateway on {base}/v1 ({len(config.model_list)} deployments, "
        f"{workers} worker{'s' if workers > 1 else ''}). Try:\n\n"
        f"  curl {base}/v1/chat/completions -H 'authorization: Bearer {key}' \\\n"
        f"    -H 'content-type: application/json' \\\n"
        f'    -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\' -i\n\n'
        f"  {_python()} -c \"import openai; c = openai.OpenAI(base_url='{base}/v1', api_key='{key}'); "
        f"r = c.chat.completions.with_raw_response.create(model='{model}', "
        f"messages=[{{'role': 'user', 'content': 'Hello'}}]); "
        f"print(r.parse().choices[0].message.content, r.headers['x-spendgate-response-cost'])\"\n",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _python() -> str:
    """The interpreter that runs spendgate (it has the openai SDK after ``make run``), as a
    path relative to the working directory when it is below it (``.venv/bin/python``)."""
    import sys

    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(exe.relative_to(Path.cwd()))
    return str(exe)


def _run(host: str, port: int, workers: int, log_level: str, access_log: bool, graceful_timeout: int) -> None:
    import uvicorn

    uvicorn.run(
        "spendgate.cli.serve:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout,
        backlog=4096,
        # uvicorn kills a worker that does not answer its supervisor's ping within this many
        # seconds, then starts another; its default (5 s) is shorter than a worker's start-up
        # on a loaded 2-core machine, which then never comes up.
        timeout_worker_healthcheck=60,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)

"""``spendgate mock-provider``: run the OpenAI/Anthropic-compatible mock upstream."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def mock_provider(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8090,
    latency_ms: Annotated[
        float, typer.Option(min=0, help="Delay before every response (header x-mock-latency-ms overrides).")
    ] = 0.0,
    chunk_delay_ms: Annotated[
        float, typer.Option(min=0, help="Delay between stream events (x-mock-chunk-delay-ms overrides).")
    ] = 0.0,
    completion_tokens: Annotated[
        int, typer.Option(min=0, help="Completion tokens when a request sets no maximum.")
    ] = 16,
    batch_polls: Annotated[int, typer.Option(min=0, help="Retrieves of a batch until it is completed.")] = 2,
    batch_seconds: Annotated[
        float | None, typer.Option(min=0, help="Complete batches after this many seconds instead.")
    ] = None,
    batch_done_on_cancel: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Input lines a batch has run when it is cancelled: their output is kept "
            "(x-mock-batch-done-on-cancel overrides).",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (stats and batches are per process).")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the mock provider: deterministic usage, latency, streaming, faults, files and batches."""
    import os

    import orjson
    import uvicorn

    from spendgate.providers.mock.app import OPTIONS_ENV

    options = {
        "latency_ms": latency_ms,
        "chunk_delay_ms": chunk_delay_ms,
        "default_completion_tokens": completion_tokens,
        "batch_polls": batch_polls,
        "batch_seconds": batch_seconds,
        "batch_done_on_cancel": batch_done_on_cancel,
    }
    os.environ[OPTIONS_ENV] = orjson.dumps(options).decode()
    typer.echo(f"mock provider on http://{host}:{port}/v1 ({workers} worker(s))", err=True)
    uvicorn.run(
        "spendgate.providers.mock.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        ws="none",
        http="auto",
        loop="auto",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        server_header=False,
    )


def register(app: typer.Typer) -> None:
    app.command("mock-provider")(mock_provider)

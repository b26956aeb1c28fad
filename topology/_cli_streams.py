"""``netscript streams``: the Durable Streams gateway."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

streams_app = typer.Typer(help="Durable streams over HTTP/SSE (port 4437).",
                          no_args_is_help=True)


@streams_app.command("serve")
def streams_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on [default: STREAMS_PORT, PORT or 4437]."),
    ] = None,
    long_poll_timeout: Annotated[
        float, typer.Option(help="Seconds a long-poll read waits for new data.")
    ] = 30.0,
) -> None:
    """Serve the Durable Streams protocol on the log at KAFKA_BOOTSTRAP_SERVERS."""
    import dataclasses

    import uvicorn

    from services.kernel import Settings
    from services.streams.api import StreamsConfig, create_streams_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env("streams")
    config = dataclasses.replace(StreamsConfig.from_env(), long_poll_timeout=long_poll_timeout)
    if port is not None:
        config = dataclasses.replace(config, port=port)
    app = create_streams_app(settings, config)
    typer.echo(f"streams on http://{host}:{config.port}/v1/stream "
               f"(log {settings.kafka_bootstrap_servers})")
    uvicorn.run(app, host=host, port=config.port, log_level="warning",
                timeout_graceful_shutdown=5)

"""``netscript registry``: the Confluent-compatible schema registry."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

registry_app = typer.Typer(help="The Confluent-compatible schema registry (port 8081).",
                           no_args_is_help=True)


@registry_app.command("serve")
def registry_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on (default: REGISTRY_PORT, PORT, else 8081)."),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="Topic holding the registry's state (default: SCHEMA_REGISTRY_TOPIC, "
                          "else _schemas)."),
    ] = None,
) -> None:
    """Serve the Schema Registry API with its state on the log at KAFKA_BOOTSTRAP_SERVERS."""
    import dataclasses

    import uvicorn

    from services.kernel import Settings
    from services.registry import RegistryConfig, RegistryError, create_registry_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env("registry")
    try:
        config = RegistryConfig.from_env()
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if port is not None:
        config = dataclasses.replace(config, port=port)
    if topic is not None:
        config = dataclasses.replace(config, topic=topic)
    app = create_registry_app(settings, config)
    typer.echo(f"schema registry on http://{host}:{config.port} (topic {config.topic} on the log "
               f"{settings.kafka_bootstrap_servers})")
    uvicorn.run(app, host=host, port=config.port, log_level="warning",
                timeout_graceful_shutdown=5)

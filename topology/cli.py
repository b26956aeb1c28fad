"""The ``netscript`` command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from topology._cli_registry import registry_app
from topology._cli_streams import streams_app
from topology._cli_topics import register_topic_commands
from topology._signals import run_until_signalled

app = typer.Typer(
    help="NetScript: an event-sourced backend framework on a Kafka-compatible log.",
    no_args_is_help=True,
)
log_app = typer.Typer(help="The embedded Kafka-compatible log.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(streams_app, name="streams")
app.add_typer(registry_app, name="registry")
register_topic_commands(app)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Interface every service binds to.")] = "127.0.0.1",
    log_port: Annotated[int, typer.Option(help="Port of the embedded log.")] = 9092,
    data_dir: Annotated[Path, typer.Option(help="Where the graph keeps its data.")] = Path(".data"),
    streams_port: Annotated[int, typer.Option(help="Port of the durable streams gateway.")] = 4437,
    registry_port: Annotated[int, typer.Option(help="Port of the schema registry.")] = 8081,
) -> None:
    """Run the whole local graph on the embedded log, each service in its own process."""
    from topology._supervisor import local_graph, supervise

    specs = local_graph(host=host, log_port=log_port, data_dir=data_dir,
                        streams_port=streams_port, registry_port=registry_port)
    code = 0

    async def main(stop: asyncio.Event) -> None:
        nonlocal code
        code = await supervise(specs, host=host, stop=stop)

    run_until_signalled(main)
    raise typer.Exit(code)


@log_app.command("serve")
def log_serve(
    host: Annotated[
        str, typer.Option(help="Interface to bind.", envvar="NETSCRIPT_LOG_HOST")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(help="Port to listen on (0 picks a free one).", envvar="NETSCRIPT_LOG_PORT"),
    ] = 9092,
    data_dir: Annotated[
        Path,
        typer.Option(help="Directory of segments and metadata.", envvar="NETSCRIPT_LOG_DATA_DIR"),
    ] = Path(".data/log"),
    node_id: Annotated[
        int, typer.Option(help="Node id reported in metadata.", envvar="NETSCRIPT_LOG_NODE_ID")
    ] = 0,
    advertised_host: Annotated[
        str | None,
        typer.Option(
            help="Host clients should connect to, if not --host.",
            envvar="NETSCRIPT_LOG_ADVERTISED_HOST",
        ),
    ] = None,
    advertised_port: Annotated[
        int | None, typer.Option(help="Port clients should connect to, if not --port.")
    ] = None,
    default_partitions: Annotated[
        int,
        typer.Option(
            help="Partitions of auto-created topics.", envvar="NETSCRIPT_LOG_DEFAULT_PARTITIONS"
        ),
    ] = 1,
    auto_create_topics: Annotated[
        bool,
        typer.Option(
            help="Create unknown topics on metadata and produce requests.",
            envvar="NETSCRIPT_LOG_AUTO_CREATE_TOPICS",
        ),
    ] = True,
    flush_interval_ms: Annotated[
        int, typer.Option(help="Longest time an acks=0/1 write waits for its fsync.")
    ] = 1000,
    cleaner_interval_ms: Annotated[
        int, typer.Option(help="How often retention and compaction run.")
    ] = 30_000,
) -> None:
    """Serve the Kafka protocol from a durable data directory until SIGINT/SIGTERM."""
    from services.log import Broker, BrokerConfig, LogError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = BrokerConfig.from_env(
        host=host,
        port=port,
        data_dir=data_dir,
        node_id=node_id,
        advertised_host=advertised_host,
        advertised_port=advertised_port,
        default_partitions=default_partitions,
        auto_create_topics=auto_create_topics,
        flush_interval_ms=flush_interval_ms,
        cleaner_interval_ms=cleaner_interval_ms,
    )

    async def main(stop: asyncio.Event) -> None:
        async with Broker.serve(config) as broker:
            typer.echo(f"log listening on {broker.bootstrap_servers} (data in {data_dir})")
            await stop.wait()

    try:
        run_until_signalled(main)
    except LogError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()

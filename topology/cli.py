"""The ``netscript`` command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from topology._appfile import APP_FILE
from topology._cli_do import register_do_command
from topology._cli_graph import (
    AppOption,
    PortOption,
    fail,
    load_app,
    parse_ports,
    register_graph_commands,
)
from topology._cli_registry import registry_app
from topology._cli_sagas import sagas_app
from topology._cli_streams import streams_app
from topology._cli_topics import register_topic_commands
from topology._cli_workers import workers_app
from topology._model import Target
from topology._signals import run_until_signalled

app = typer.Typer(
    help="NetScript: an event-sourced backend framework on a Kafka-compatible log.",
    no_args_is_help=True,
)
log_app = typer.Typer(help="The embedded Kafka-compatible log.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(streams_app, name="streams")
app.add_typer(registry_app, name="registry")
app.add_typer(sagas_app, name="sagas")
app.add_typer(workers_app, name="workers")
register_topic_commands(app)
register_graph_commands(app)
register_do_command(app)


@app.command()
def up(
    app_file: AppOption = None,
    host: Annotated[str, typer.Option(help="Interface every process binds to.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the graph keeps its data [default: .data next to "
                                       "the app file].")
    ] = None,
    port: PortOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="NAME",
                     help="Start only these resources and what they depend on (repeatable, or "
                          "comma-separated)."),
    ] = None,
    max_restarts: Annotated[
        int, typer.Option(min=0, help="Restarts in a row after which a crashing child is given "
                                      "up and the graph stopped.")
    ] = 4,
    log_port: Annotated[int | None, typer.Option(help="Port of the embedded log.")] = None,
    streams_port: Annotated[int | None, typer.Option(help="Port of the streams gateway.")
                            ] = None,
    registry_port: Annotated[int | None, typer.Option(help="Port of the schema registry.")
                             ] = None,
) -> None:
    """Run the graph of netscript.toml on this machine, each process its own child process."""
    from rich.console import Console

    from topology._compose import ENV_FILE
    from topology._errors import TopologyError
    from topology._graph import build_graph
    from topology._supervisor import Supervisor, load_secrets, selection
    from topology._units import RestartPolicy

    ports = parse_ports(port)
    for name, value in (("log", log_port), ("streams", streams_port),
                        ("registry", registry_port)):
        if value is not None:
            ports.setdefault(name, value)
    names = [n.strip() for item in only or () for n in item.split(",") if n.strip()]
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # piped: wide enough for the table, never wrapped
        console = Console(highlight=False, soft_wrap=True, width=140)
    try:
        loaded = load_app(app_file)
        graph = build_graph(loaded, target=Target.LOCAL, host=host, ports=ports,
                            data_dir=data_dir.resolve() if data_dir else None)
        supervisor = Supervisor(graph, selection(graph, names), console=console,
                                secrets=load_secrets(loaded.root / ENV_FILE),
                                policy=RestartPolicy(max_failures=max_restarts + 1))
    except TopologyError as exc:
        raise fail(exc) from None
    if loaded.path is None:
        console.print(f"no {APP_FILE} here: running the built-in graph "
                      "(log, registry, streams, sagas)")
    code = 0

    async def main(stop: asyncio.Event) -> None:
        nonlocal code
        code = await supervisor.run(stop)

    try:
        run_until_signalled(main)
    except TopologyError as exc:
        raise fail(exc) from None
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
    max_open_files: Annotated[
        int | None,
        typer.Option(
            help="Most segment files open at once, least recently used closed first "
            "(default: half of `ulimit -n`, at least 64).",
            envvar="NETSCRIPT_LOG_MAX_OPEN_FILES",
        ),
    ] = None,
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
        max_open_files=max_open_files,
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

"""``netscript graph``, ``netscript compose`` and ``netscript init``: the graph, its compose
file, and the topics and schemas it declares.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from topology._appfile import APP_FILE, AppFile, default_app_file, load_app_file
from topology._model import Target

AppOption = Annotated[
    Path | None,
    typer.Option("--app", envvar="NETSCRIPT_APP",
                 help=f"The app file [default: ./{APP_FILE}, else the built-in graph]."),
]
PortOption = Annotated[
    list[str] | None,
    typer.Option("--port", metavar="NAME=PORT",
                 help="Run resource NAME on another local port (repeatable)."),
]


def load_app(app: Path | None) -> AppFile:
    """The app file named by ``--app``, else ``./netscript.toml``, else the built-in app."""
    if app is not None:
        return load_app_file(app)
    here = Path(APP_FILE)
    return load_app_file(here) if here.exists() else default_app_file()


def parse_ports(values: list[str] | None) -> dict[str, int]:
    """``["streams=5000"]`` → ``{"streams": 5000}``; exits with a usage error otherwise."""
    ports: dict[str, int] = {}
    for value in values or ():
        name, _, port = value.partition("=")
        if not name or not port.isdigit():
            raise typer.BadParameter(f"{value!r} is not NAME=PORT (e.g. streams=5000)",
                                     param_hint="--port")
        ports[name] = int(port)
    return ports


def fail(exc: Exception, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


def register_graph_commands(app: typer.Typer) -> None:
    """Add ``graph``, ``compose`` and ``init`` to the ``netscript`` command line."""
    app.command("graph")(graph)
    app.command("compose")(compose)
    app.command("init")(init)


def graph(
    app: AppOption = None,
    target: Annotated[Target, typer.Option(help="Wire it for netscript up or compose.yaml.")
                      ] = Target.LOCAL,
    cluster: Annotated[bool, typer.Option(help="The cluster shape (compose only).")] = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print a Mermaid flowchart.")
                       ] = False,
    port: PortOption = None,
) -> None:
    """Print the resource graph: resources, ports, references and environment."""
    from rich.console import Console

    from topology._errors import TopologyError
    from topology._graph import build_graph
    from topology._render import graph_table, mermaid_chart

    if cluster:
        target = Target.COMPOSE
    try:
        resolved = build_graph(load_app(app), target=target, cluster=cluster,
                               ports=parse_ports(port))
    except TopologyError as exc:
        raise fail(exc) from None
    if mermaid:
        typer.echo(mermaid_chart(resolved))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=400)  # piped: never fold a line
        console.print(graph_table(resolved))


def compose(
    app: AppOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it [default: compose.yaml, or "
                                            "compose.cluster.yaml with --cluster, next to the "
                                            "app file]."),
    ] = None,
    cluster: Annotated[bool, typer.Option(
        help="Three Redpanda brokers, replication factor 3, replicas of every processor.")
    ] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Write nothing; exit 1 if the file is not what would be written.")
    ] = False,
) -> None:
    """Write compose.yaml from the graph (and add missing secrets to the .env beside it)."""
    from topology._compose import (
        CLUSTER_FILE,
        COMPOSE_FILE,
        ENV_FILE,
        graph_secrets,
        merge_env_file,
        render_compose,
    )
    from topology._errors import TopologyError
    from topology._graph import build_graph

    try:
        loaded = load_app(app)
        resolved = build_graph(loaded, target=Target.COMPOSE, cluster=cluster)
    except TopologyError as exc:
        raise fail(exc) from None
    path = output or loaded.root / (CLUSTER_FILE if cluster else COMPOSE_FILE)
    text = render_compose(resolved)
    if check:
        current = path.read_text() if path.exists() else None
        if current != text:
            typer.echo(f"{path} is stale: run `netscript compose{' --cluster' if cluster else ''}"
                       f"` and commit it", err=True)
            raise typer.Exit(1)
        typer.echo(f"{path} is up to date")
        return
    path.write_text(text)
    added = merge_env_file(path.parent / ENV_FILE, graph_secrets(resolved))
    typer.echo(f"wrote {path} ({len(resolved.nodes)} resources)")
    if added:
        typer.echo(f"added {', '.join(added)} to {path.parent / ENV_FILE} (keep it out of git)")


def init(
    app: AppOption = None,
    target: Annotated[Target, typer.Option(help="Which graph's topics and schemas.")
                      ] = Target.LOCAL,
    replication_factor: Annotated[int, typer.Option(min=1, help="Replicas of each new topic.")
                                  ] = 1,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", "-b",
                     help="The log (default: KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)."),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Schema registry URL (default: SCHEMA_REGISTRY_URL; "
                                        "without one, schemas are not registered)."),
    ] = None,
) -> None:
    """Create the topics and register the schemas the installed plugins declare (idempotent)."""
    from services.kernel import Settings
    from topology._errors import TopologyError
    from topology._graph import build_graph
    from topology._provision import create_topics, register_schemas, schema_roots

    try:
        loaded = load_app(app)
        resolved = build_graph(loaded, target=target)
    except TopologyError as exc:
        raise fail(exc) from None
    settings = Settings.from_env("init")
    servers = bootstrap_servers or settings.kafka_bootstrap_servers
    url = registry or settings.schema_registry_url

    async def main() -> None:
        for topic in await create_topics(servers, resolved.topics,
                                         replication_factor=replication_factor):
            typer.echo(f"topic {topic.name}: {'created' if topic.created else 'exists'}")
        if resolved.schemas and url is None:
            typer.echo(f"schemas not registered (no SCHEMA_REGISTRY_URL): "
                       f"{', '.join(s.subject for s in resolved.schemas)}")
            return
        for schema in await register_schemas(url or "", resolved.schemas,
                                             roots=schema_roots(loaded.root)):
            typer.echo(f"subject {schema.subject}: schema id {schema.schema_id}")

    try:
        asyncio.run(main())
    except TopologyError as exc:
        raise fail(exc, 1) from None

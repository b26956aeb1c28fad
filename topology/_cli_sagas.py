"""``netscript sagas``: the saga runtime (a background processor) and the :8092 API."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

sagas_app = typer.Typer(help="Durable sagas: the runtime and the API (port 8092).",
                        no_args_is_help=True)

SagasOption = Annotated[
    str | None,
    typer.Option("--sagas", help="module:attribute references to the saga definitions "
                                 "[default: NETSCRIPT_SAGAS or the seed's examples]."),
]
PartitionsOption = Annotated[
    int, typer.Option(help="Partitions of the saga bus (and of the topics co-partitioned "
                           "with it); fixed once the topics exist.")]


@sagas_app.command("run")
def sagas_run(
    sagas: SagasOption = None,
    store: Annotated[
        str | None,
        typer.Option(help="Store backend, kv or postgres [default: NETSCRIPT_SAGA_STORE]."),
    ] = None,
    partitions: PartitionsOption = 4,
    data_dir: Annotated[str, typer.Option(help="Local scratch directory of the processor.")
                        ] = ".netscript/sagas",
    health_port: Annotated[
        int | None, typer.Option(help="Serve /health/live and /health/ready here (kv: once "
                                      "the instance table is recovered).")] = None,
    host: Annotated[str, typer.Option(help="Interface of the health endpoint.")] = "127.0.0.1",
) -> None:
    """Run the saga runtime: apply bus messages to instances, exactly once."""
    from services.kernel import Settings
    from services.sagas._backend import resolve_saga_store_backend
    from services.sagas._engine import SagaEngine
    from services.sagas._loading import DEFAULT_SAGAS, load_definitions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    env = dict(os.environ)
    if store is not None:
        env["NETSCRIPT_SAGA_STORE"] = store
    backend = resolve_saga_store_backend(env)
    settings = Settings.from_env("sagas-runtime")
    engine = SagaEngine(load_definitions(sagas or env.get("NETSCRIPT_SAGAS") or DEFAULT_SAGAS))
    typer.echo(f"sagas runtime ({backend}) for {', '.join(engine.definitions)} on "
               f"{settings.kafka_bootstrap_servers}")
    if backend == "kv":
        from services.sagas._processor import SagaProcessor, run_processor

        run_processor(SagaProcessor(engine, bootstrap_servers=settings.kafka_bootstrap_servers,
                                    partitions=partitions, data_dir=data_dir,
                                    health_port=health_port, health_host=host))
        return
    from services.sagas._postgres import run_postgres_cli

    run_postgres_cli(engine, settings, partitions=partitions, health_port=health_port,
                     health_host=host)


@sagas_app.command("serve")
def sagas_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port [default: PORT or 8092].")] = None,
    sagas: SagasOption = None,
    partitions: PartitionsOption = 4,
) -> None:
    """Serve the sagas API (registered sagas, instances, publish, SSE activity)."""
    import uvicorn

    from services.kernel import Settings
    from services.sagas._backend import resolve_saga_store_backend
    from services.sagas._engine import SagaEngine
    from services.sagas._loading import DEFAULT_SAGAS, load_definitions
    from services.sagas._service import create_sagas_service
    from services.sagas.api import PORT

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    backend = resolve_saga_store_backend(os.environ)
    settings = Settings.from_env("sagas")
    engine = SagaEngine(load_definitions(sagas or os.environ.get("NETSCRIPT_SAGAS")
                                         or DEFAULT_SAGAS))
    app = create_sagas_service(settings, engine, backend=backend, partitions=partitions)
    bound = port or settings.port or PORT
    typer.echo(f"sagas API on http://{host}:{bound}/api/v1/sagas ({backend} store)")
    uvicorn.run(app, host=host, port=bound, log_level="warning", timeout_graceful_shutdown=5)

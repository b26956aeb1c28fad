"""``netscript workers``: the dispatcher and the worker pools (background processors), the
:8091 API, and triggering a job from the shell."""

from __future__ import annotations

import logging
import os
from typing import Annotated, cast

import typer

workers_app = typer.Typer(help="Background jobs: dispatcher, worker pools, API (port 8091).",
                          no_args_is_help=True)

JobsOption = Annotated[
    str | None,
    typer.Option("--jobs", help="module:attribute references to the job definitions "
                                "[default: NETSCRIPT_JOBS or the seed's examples]."),
]
HostOption = Annotated[str, typer.Option(help="Interface of the HTTP endpoint.")]
HealthPortOption = Annotated[
    int | None, typer.Option(help="Serve /health/live and /health/ready here (once ready).")]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _jobs_spec(jobs: str | None) -> str:
    from services.workers._loading import DEFAULT_JOBS

    return jobs or os.environ.get("NETSCRIPT_JOBS") or DEFAULT_JOBS


@workers_app.command("dispatch")
def workers_dispatch(
    data_dir: Annotated[str, typer.Option(help="Local scratch directory of the processor.")
                        ] = ".netscript/workers",
    health_port: HealthPortOption = None,
    host: HostOption = "127.0.0.1",
) -> None:
    """Run the dispatcher: the one owner of every lease (exactly-once on the log)."""
    from services.kernel import Settings
    from services.workers._dispatcher import run_dispatcher

    _logging()
    settings = Settings.from_env("workers-dispatcher")
    typer.echo(f"workers dispatcher on {settings.kafka_bootstrap_servers}")
    run_dispatcher(settings.kafka_bootstrap_servers, health_port=health_port,
                   health_host=host, data_dir=data_dir)


@workers_app.command("run")
def workers_run(
    jobs: JobsOption = None,
    health_port: HealthPortOption = None,
    host: HostOption = "127.0.0.1",
) -> None:
    """Run worker pools (WORKER_POOLS_COUNT, WORKER_POOL_CAPACITY,
    WORKER_POOL_URGENT_PERCENTAGE, WORKER_HEARTBEAT_SECONDS, WORKER_LEASE_SECONDS)."""
    from services.kernel import Settings, configure_tracing
    from services.workers._loading import load_jobs
    from services.workers._pool_settings import PoolSettings
    from services.workers._pools import run_pools

    _logging()
    settings = Settings.from_env("workers-pools")
    configure_tracing(settings)
    try:
        pool_settings = PoolSettings.from_env(os.environ)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    definitions = load_jobs(_jobs_spec(jobs))
    typer.echo(f"{pool_settings.pools_count} worker pool(s) x {pool_settings.capacity} for "
               f"{', '.join(j.id for j in definitions)} on {settings.kafka_bootstrap_servers}")
    run_pools(pool_settings, definitions, bootstrap_servers=settings.kafka_bootstrap_servers,
              health_port=health_port, health_host=host)


@workers_app.command("serve")
def workers_serve(
    host: HostOption = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port [default: PORT or 8091].")] = None,
    jobs: JobsOption = None,
) -> None:
    """Serve the workers API (jobs, triggers, executions, pools, seed, SSE)."""
    import uvicorn

    from services.kernel import Settings
    from services.workers._loading import load_jobs
    from services.workers._service import create_workers_service

    _logging()
    settings = Settings.from_env("workers")
    try:
        app = create_workers_service(settings, load_jobs(_jobs_spec(jobs)), os.environ)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    uvicorn.run(app, host=host, port=port or settings.port or 8091, log_level="warning")


@workers_app.command("trigger")
def workers_trigger(
    job: Annotated[str, typer.Argument(help="The job id.")],
    payload: Annotated[str, typer.Option(help="The payload, as JSON.")] = "{}",
    lane: Annotated[str | None, typer.Option(help="normal or urgent [default: the job's].")
                    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same execution.")
                               ] = None,
    jobs: JobsOption = None,
) -> None:
    """Trigger a job from the shell (appends its request to the lane; prints the id)."""
    import asyncio
    import json

    from services.kernel import Settings
    from services.workers._errors import WorkersError
    from services.workers._jobs import Lane
    from services.workers._loading import load_jobs
    from services.workers._trigger import JobClient

    if lane not in (None, "normal", "urgent"):
        raise typer.BadParameter("--lane is normal or urgent")
    try:
        data = json.loads(payload)
    except ValueError as error:
        raise typer.BadParameter(f"--payload is not JSON: {error}") from error

    async def run() -> str:
        async with JobClient(load_jobs(_jobs_spec(jobs)), Settings.from_env("workers-cli")
                             ) as client:
            receipt = await client.trigger(job, data, lane=cast("Lane | None", lane),
                                           idempotency_key=idempotency_key)
            return receipt.execution_id

    try:
        typer.echo(asyncio.run(run()))
    except WorkersError as error:
        raise typer.BadParameter(str(error)) from error

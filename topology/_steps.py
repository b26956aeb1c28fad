"""The core steps of ``netscript do`` and the pipeline of an app (core + plugin steps).

::

    create-topics      the topics the plugins declare           (netscript init)
    register-schemas   their schema subjects                    (netscript init)
    migrate-db         their SQL migrations, against DATABASE_URL
    generate-compose   compose.yaml and .env                     (netscript compose)
    build-images       docker build of the app's image           (skipped without Docker)
    deploy             docker compose up --wait                  (skipped without Docker)
                       ← generate-compose, build-images
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from typing import Any

from topology._contribution import PipelineContribution
from topology._errors import ProvisionError, StepSkipped
from topology._migrations import Migration, apply_migrations
from topology._model import Target
from topology._pipeline import Pipeline, Step, StepContext

DOCKER_TIMEOUT = 10.0


def pipeline_for(context: StepContext) -> Pipeline:
    """The core steps plus the steps each plugin of ``context`` contributes."""
    steps = list(core_steps())
    base = context.contribution_context()
    for contribution in context.contributions:
        if isinstance(contribution, PipelineContribution):
            name = contribution.plugin_name
            steps.extend(replace(step, contributed_by=f"plugin {name}")
                         for step in contribution.steps(base.for_plugin(name)))
    return Pipeline(steps)


def core_steps() -> tuple[Step, ...]:
    return (
        Step(name="create-topics", run=_create_topics, inputs=_topic_inputs,
             description="create the topics the plugins declare"),
        Step(name="register-schemas", run=_register_schemas, inputs=_schema_inputs,
             description="register the schema subjects the plugins declare"),
        Step(name="migrate-db", run=_migrate_db, inputs=_migration_inputs,
             description="apply the plugins' SQL migrations to DATABASE_URL"),
        Step(name="generate-compose", run=_generate_compose, inputs=_compose_inputs,
             outputs=_compose_outputs, description="write compose.yaml and .env"),
        Step(name="build-images", run=_build_images,
             description="docker build the app's image (Docker's cache makes a rebuild cheap)"),
        Step(name="deploy", run=_deploy, depends_on=("generate-compose", "build-images"),
             description="docker compose up --wait"),
    )


def migrations_of(context: StepContext) -> list[Migration]:
    """Every plugin's migrations, in plugin order, each labelled with its plugin."""
    base = context.contribution_context()
    found: list[Migration] = []
    for contribution in context.contributions:
        if isinstance(contribution, PipelineContribution):
            name = contribution.plugin_name
            found.extend(replace(m, plugin=name)
                         for m in contribution.migrations(base.for_plugin(name)))
    return found


def _topic_inputs(context: StepContext) -> Any:
    topics = [t for s in context.plugin_slices().values() for t in s.topics]
    return {"log": context.bootstrap_servers, "rf": context.replication_factor,
            "topics": [[t.name, t.partitions, t.topic_configs()] for t in topics]}


async def _create_topics(context: StepContext) -> str:
    from topology._provision import create_topics

    topics = [t for s in context.plugin_slices().values() for t in s.topics]
    if not topics:
        return "no topics declared"
    results = await create_topics(context.bootstrap_servers, topics,
                                  replication_factor=context.replication_factor)
    created = [r.name for r in results if r.created]
    return f"{len(results)} topics, {len(created)} created" + (
        f" ({', '.join(created)})" if created else "")


def _schema_inputs(context: StepContext) -> Any:
    from topology._provision import schema_roots

    roots = schema_roots(context.app.root)
    subjects = [s for p in context.plugin_slices().values() for s in p.schemas]
    files = {}
    for subject in subjects:
        path = next((r / subject.schema for r in roots if (r / subject.schema).is_file()), None)
        files[subject.subject] = path.read_text() if path else None
    return {"registry": context.registry_url, "subjects": files}


async def _register_schemas(context: StepContext) -> str:
    from topology._provision import register_schemas, schema_roots

    subjects = [s for p in context.plugin_slices().values() for s in p.schemas]
    if not subjects:
        return "no schemas declared"
    if context.registry_url is None:
        raise StepSkipped("no SCHEMA_REGISTRY_URL: set it or pass --registry")
    results = await register_schemas(context.registry_url, subjects,
                                     roots=schema_roots(context.app.root))
    return ", ".join(f"{r.subject} → id {r.schema_id}" for r in results)


def _migration_inputs(context: StepContext) -> Any:
    return {"database": context.database_url,
            "migrations": [[m.plugin, m.name, m.checksum] for m in migrations_of(context)]}


async def _migrate_db(context: StepContext) -> str:
    migrations = migrations_of(context)
    if not migrations:
        return "no migrations declared"
    if context.database_url is None:
        raise StepSkipped("no DATABASE_URL: set it to run the plugins' migrations")
    results = await apply_migrations(context.database_url, migrations)
    applied = [f"{r.plugin}/{r.name}" for r in results if r.applied]
    return f"{len(results)} migrations, {len(applied)} applied" + (
        f" ({', '.join(applied)})" if applied else "")


def _compose_text(context: StepContext) -> str:
    from topology._compose import render_compose
    from topology._graph import build_graph

    graph = build_graph(context.app, target=Target.COMPOSE,
                        contributions=context.contributions)
    return render_compose(graph)


def _compose_inputs(context: StepContext) -> Any:
    return {"compose": _compose_text(context)}


def _compose_outputs(context: StepContext) -> Any:
    from topology._compose import COMPOSE_FILE

    path = context.app.root / COMPOSE_FILE
    return path.read_text() if path.exists() else None


async def _generate_compose(context: StepContext) -> str:
    def write() -> str:
        from topology._compose import (
            COMPOSE_FILE,
            ENV_FILE,
            graph_secrets,
            merge_env_file,
            render_compose,
        )
        from topology._graph import build_graph

        graph = build_graph(context.app, target=Target.COMPOSE,
                            contributions=context.contributions)
        path = context.app.root / COMPOSE_FILE
        path.write_text(render_compose(graph))
        added = merge_env_file(context.app.root / ENV_FILE, graph_secrets(graph))
        return f"wrote {path.name} ({len(graph.nodes)} resources)" + (
            f", added {', '.join(added)} to {ENV_FILE}" if added else "")

    return await asyncio.to_thread(write)


async def _build_images(context: StepContext) -> str:
    from topology._compose import image_name
    from topology._graph import build_graph

    await _require_docker()
    graph = build_graph(context.app, target=Target.COMPOSE,
                        contributions=context.contributions)
    if not any(node.resource.is_process for node in graph.nodes):
        return "no NetScript processes: no image to build"
    image = image_name(graph)
    await _docker("build", "-t", image, "-f", "Dockerfile", ".", context=context,
                  what=f"image {image}")
    return f"built {image}"


async def _deploy(context: StepContext) -> str:
    from topology._compose import COMPOSE_FILE

    await _require_docker()
    await _docker("compose", "-f", COMPOSE_FILE, "up", "--wait", context=context,
                  what="the compose project")
    return f"{COMPOSE_FILE} is up and healthy"


async def _require_docker() -> None:
    """Raise :class:`StepSkipped` unless ``docker`` is on PATH and its daemon answers."""
    if shutil.which("docker") is None:
        raise StepSkipped("docker is not on PATH: install Docker to build and deploy")
    process = await asyncio.create_subprocess_exec(
        "docker", "info", "--format", "{{.ServerVersion}}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(DOCKER_TIMEOUT):
            code = await process.wait()
    except TimeoutError:
        code = None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if code != 0:
        raise StepSkipped("the Docker daemon does not answer (`docker info` failed): start it "
                          "to build and deploy")


async def _docker(*args: str, context: StepContext, what: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "docker", *args, cwd=context.app.root, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:  # cancelled: do not leave docker running
            process.kill()
            await process.wait()
    if process.returncode != 0:
        tail = " | ".join(output.decode(errors="replace").strip().splitlines()[-3:])
        raise ProvisionError(item=what, problem=f"`docker {' '.join(args)}` exited with "
                                                f"{process.returncode}: {tail}")

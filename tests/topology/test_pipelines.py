"""``netscript do``: the pipeline's order, concurrency, failure isolation, cache, and the core
steps against a real log, schema registry and Postgres."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.kernel import Settings
from services.kernel.testing import RunningServer, serve_app
from services.log import Broker
from services.registry import RegistryConfig, create_registry_app
from tests.topology.pipeline_plugin import MigratingContribution, StockContribution
from topology import default_app_file
from topology._migrations import Migration
from topology._pipeline import Pipeline, Step, StepContext, StepStatus
from topology._steps import pipeline_for

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432/test"
SCHEMA = {"type": "record", "name": "Stock", "namespace": "test",
          "fields": [{"name": "sku", "type": "string"}]}


def context(tmp_path: Path, **fields: Any) -> StepContext:
    """A step context for an app without plugins in ``tmp_path``."""
    return StepContext(app=default_app_file(root=tmp_path), contributions=(), **fields)


def recorder(log: list[str], name: str) -> Callable[[StepContext], Any]:
    """A step action that records its run."""
    async def run(_: StepContext) -> str:
        log.append(name)
        return f"{name} ran"
    return run


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`netscript do` in a subprocess, on the app file in ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "topology.cli", "do", "--app", str(tmp_path / "netscript.toml"),
         *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def write_app(tmp_path: Path, plugins: str) -> None:
    """An app file with only ``plugins``."""
    (tmp_path / "netscript.toml").write_text(
        textwrap.dedent('[app]\nname = "piped"\n') + textwrap.dedent(plugins))


async def test_a_dependency_finishes_before_its_dependent_starts(tmp_path: Path) -> None:
    """Each step starts only after every step it depends on has finished."""
    async def work(_: StepContext) -> None:
        return None

    pipeline = Pipeline([
        Step(name="deploy", run=work, depends_on=("compose", "images")),
        Step(name="images", run=work, depends_on=("base",)),
        Step(name="compose", run=work),
        Step(name="base", run=work),
    ])
    report = await pipeline.run(context(tmp_path))
    assert report.ok
    results = {r.step: r for r in report.results}
    for step in pipeline.steps:
        for dependency in step.depends_on:
            assert results[dependency].finished <= results[step.name].started
    assert [s.name for s in pipeline.closure(["images"])] == ["base", "images"]


async def test_independent_steps_run_at_the_same_time(tmp_path: Path) -> None:
    """Two steps without a dependency between them overlap: each waits for the other."""
    arrived = {"left": asyncio.Event(), "right": asyncio.Event()}

    def meeting(me: str, other: str) -> Callable[[StepContext], Any]:
        async def run(_: StepContext) -> str:
            arrived[me].set()
            async with asyncio.timeout(5):
                await arrived[other].wait()
            return "met"
        return run

    pipeline = Pipeline([Step(name="left", run=meeting("left", "right")),
                         Step(name="right", run=meeting("right", "left"))])
    report = await pipeline.run(context(tmp_path))
    assert [r.status for r in report.results] == [StepStatus.SUCCEEDED] * 2


async def test_a_failing_step_skips_only_its_dependents(tmp_path: Path) -> None:
    """The failure's dependents are skipped with the reason; another branch still runs."""
    log: list[str] = []

    async def broken(_: StepContext) -> None:
        raise RuntimeError("no disk left")

    pipeline = Pipeline([
        Step(name="build", run=broken),
        Step(name="deploy", run=recorder(log, "deploy"), depends_on=("build",)),
        Step(name="smoke", run=recorder(log, "smoke"), depends_on=("deploy",)),
        Step(name="lint", run=recorder(log, "lint")),
    ])
    report = await pipeline.run(context(tmp_path))
    assert not report.ok
    assert report.result("build").status is StepStatus.FAILED
    assert report.result("build").detail == "RuntimeError: no disk left"
    assert report.result("deploy").detail == "dependency build failed"
    assert report.result("smoke").detail == "dependency deploy skipped"
    assert report.result("lint").status is StepStatus.SUCCEEDED
    assert log == ["lint"]


def test_the_cli_summary_names_the_failure_and_exits_non_zero(tmp_path: Path) -> None:
    """`netscript do` with a failing plugin step: summary says why, exit code 1."""
    write_app(tmp_path, """
        [plugins.pipe]
        entry = "tests.topology.pipeline_plugin:PipeContribution"
        fail = "pipe-b"
    """)
    done = run_cli(tmp_path, "pipe-c", "pipe-d")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split("│")[1].strip(): line for line in done.stdout.splitlines()
             if line.startswith("│")}
    assert "failed" in lines["pipe-b"]
    assert "RuntimeError: pipe-b broke on purpose" in (
        lines["pipe-b"])
    assert "skipped" in lines["pipe-c"]
    assert "dependency pipe-b failed" in lines["pipe-c"]
    assert "succeeded" in lines["pipe-a"]
    assert "succeeded" in lines["pipe-d"]
    assert "create-topics" not in lines  # only the asked steps and their dependencies
    assert "failed: pipe-b" in done.stdout


def test_list_prints_the_dag_and_who_contributed_each_step(tmp_path: Path) -> None:
    """`netscript do --list` shows core and plugin steps with their dependencies."""
    write_app(tmp_path, """
        [plugins.pipe]
        entry = "tests.topology.pipeline_plugin:PipeContribution"
    """)
    done = run_cli(tmp_path, "--list")
    assert done.returncode == 0, done.stderr
    rows = {cells[0]: cells[1:3] for line in done.stdout.splitlines() if line.startswith("│")
            for cells in [[c.strip() for c in line.strip("│").split("│")]]}
    assert rows["deploy"] == ["generate-compose, build-images", "core"]
    assert rows["create-topics"] == ["-", "core"]
    assert rows["pipe-b"] == ["pipe-a", "plugin pipe"]
    assert list(rows).index("pipe-a") < list(rows).index("pipe-b") < list(rows).index("pipe-c")
    assert set(rows) >= {"register-schemas", "migrate-db", "generate-compose", "build-images"}


async def test_unchanged_steps_are_up_to_date_until_an_input_changes(tmp_path: Path) -> None:
    """A second run skips unchanged steps; a changed input re-runs the step and its
    dependents; --force re-runs everything."""
    source = tmp_path / "source.txt"
    source.write_text("v1")
    log: list[str] = []
    pipeline = Pipeline([
        Step(name="compile", run=recorder(log, "compile"),
             inputs=lambda ctx: (ctx.app.root / "source.txt").read_text()),
        Step(name="package", run=recorder(log, "package"), depends_on=("compile",),
             inputs=lambda ctx: "package settings"),
        Step(name="docs", run=recorder(log, "docs"), inputs=lambda ctx: "docs settings"),
    ])
    state = tmp_path / ".netscript"
    ctx = context(tmp_path)
    await pipeline.run(ctx, state_dir=state)
    assert sorted(log) == ["compile", "docs", "package"]
    log.clear()
    second = await pipeline.run(ctx, state_dir=state)
    assert log == []
    assert {r.status for r in second.results} == {StepStatus.UP_TO_DATE}
    assert second.result("compile").detail == "compile ran"
    source.write_text("v2")
    await pipeline.run(ctx, state_dir=state)
    assert sorted(log) == ["compile", "package"]
    log.clear()
    await pipeline.run(ctx, state_dir=state, force=True)
    assert sorted(log) == ["compile", "docs", "package"]
    assert set(json.loads((state / "state.json").read_text())["steps"]) == {
        "compile", "package", "docs"}


async def test_generate_compose_reruns_when_its_output_was_changed(tmp_path: Path) -> None:
    """generate-compose writes compose.yaml, is then up to date, and rewrites a hand-edited
    file."""
    ctx = context(tmp_path)
    pipeline = pipeline_for(ctx)
    state = tmp_path / ".netscript"
    first = await pipeline.run(ctx, targets=["generate-compose"], state_dir=state)
    assert first.result("generate-compose").status is StepStatus.SUCCEEDED, first
    written = (tmp_path / "compose.yaml").read_text()
    assert "redpanda" in written
    again = await pipeline.run(ctx, targets=["generate-compose"], state_dir=state)
    assert again.result("generate-compose").status is StepStatus.UP_TO_DATE
    (tmp_path / "compose.yaml").write_text("edited by hand\n")
    third = await pipeline.run(ctx, targets=["generate-compose"], state_dir=state)
    assert third.result("generate-compose").status is StepStatus.SUCCEEDED
    assert (tmp_path / "compose.yaml").read_text() == written


@pytest.fixture
async def registry(broker: Broker) -> AsyncIterator[RunningServer]:
    """The schema registry on a free port, its state on the test's broker."""
    settings = Settings.from_env("registry-test",
                                 {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    async with serve_app(create_registry_app(settings, RegistryConfig())) as server:
        yield server


async def test_create_topics_and_register_schemas_on_a_real_log_and_registry(
    tmp_path: Path, broker: Broker, registry: RunningServer
) -> None:
    """create-topics and register-schemas provision what a plugin declares."""
    from aiokafka.admin import AIOKafkaAdminClient

    (tmp_path / "Stock.avsc").write_text(json.dumps(SCHEMA))
    topic, subject = f"stock-{uuid.uuid4().hex[:8]}", f"stock-{uuid.uuid4().hex[:8]}-value"
    ctx = StepContext(app=default_app_file(root=tmp_path),
                      contributions=(StockContribution(topic, subject),),
                      bootstrap_servers=broker.bootstrap_servers, registry_url=registry.url)
    report = await pipeline_for(ctx).run(ctx, targets=["create-topics", "register-schemas"])
    assert report.ok, report
    assert report.result("create-topics").detail == f"1 topics, 1 created ({topic})"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        assert topic in await admin.list_topics()
    finally:
        await admin.close()
    async with httpx.AsyncClient(base_url=registry.url) as client:
        versions = (await client.get(f"/subjects/{subject}/versions")).json()
    assert versions == [1]


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """DATABASE_URL of a fresh schema on the real Postgres, dropped after the test."""
    schema = f"pipeline_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(f"create schema {schema}")
        yield f"{POSTGRES}?search_path={schema}"
    finally:
        await connection.execute(f"drop schema if exists {schema} cascade")
        await connection.close()


async def test_migrate_db_applies_each_migration_once(tmp_path: Path, database_url: str) -> None:
    """migrate-db runs a plugin's migrations in order, records them, and never re-runs one."""
    first = [Migration(name="001-items", sql="create table items (id int primary key)"),
             Migration(name="002-seed", sql="insert into items values (1), (2)")]
    ctx = StepContext(app=default_app_file(root=tmp_path),
                      contributions=(MigratingContribution(first),), database_url=database_url)
    report = await pipeline_for(ctx).run(ctx, targets=["migrate-db"])
    assert report.result("migrate-db").detail == (
        "2 migrations, 2 applied (migrating/001-items, migrating/002-seed)")
    more = [*first, Migration(name="003-more", sql="insert into items values (3)")]
    ctx = StepContext(app=ctx.app, contributions=(MigratingContribution(more),),
                      database_url=database_url)
    report = await pipeline_for(ctx).run(ctx, targets=["migrate-db"], force=True)
    assert report.result("migrate-db").detail == "3 migrations, 1 applied (migrating/003-more)"
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("select count(*) from items") == 3
        names = await connection.fetch("select name from netscript_migrations order by name")
        assert [r["name"] for r in names] == ["001-items", "002-seed", "003-more"]
    finally:
        await connection.close()
    edited = [Migration(name="001-items", sql="create table items (id bigint primary key)")]
    ctx = StepContext(app=ctx.app, contributions=(MigratingContribution(edited),),
                      database_url=database_url)
    report = await pipeline_for(ctx).run(ctx, targets=["migrate-db"])
    assert report.result("migrate-db").status is StepStatus.FAILED
    assert "its SQL changed after it was applied" in report.result("migrate-db").detail


async def test_docker_steps_are_skipped_without_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without docker on PATH, build-images and deploy are skipped, not failed."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    ctx = context(tmp_path)
    report = await pipeline_for(ctx).run(ctx, targets=["deploy"])
    assert report.ok
    assert report.result("build-images").status is StepStatus.SKIPPED
    assert "docker is not on PATH" in report.result("build-images").detail
    assert report.result("deploy").detail == "dependency build-images skipped"
    assert report.result("generate-compose").status is StepStatus.SUCCEEDED

"""``netscript do [STEP…]``: run pipeline steps with their dependencies, or list them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from topology._cli_graph import AppOption, fail, load_app
from topology._model import Target

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from topology._pipeline import Pipeline, PipelineReport, Step, StepResult

_MARKS = {"succeeded": "[green]✓[/]", "up to date": "[cyan]=[/]", "skipped": "[yellow]-[/]",
          "failed": "[red]✗[/]"}


def register_do_command(app: typer.Typer) -> None:
    """Add ``do`` to the ``netscript`` command line."""
    app.command("do")(do)


def do(
    steps: Annotated[list[str] | None, typer.Argument(
        metavar="[STEP]...", help="Steps to run, each with its dependencies (default: every "
                                  "step); `--list` shows them.")] = None,
    app: AppOption = None,
    list_steps: Annotated[bool, typer.Option(
        "--list", help="Print the steps, their dependencies and who contributed them.")
    ] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Run the steps even if their inputs did not change.")] = False,
    target: Annotated[Target, typer.Option(help="Whose topics and schemas (the graph of "
                                                "netscript up, or of compose.yaml).")
                      ] = Target.LOCAL,
    replication_factor: Annotated[int, typer.Option(min=1, help="Replicas of each new topic.")
                                  ] = 1,
    bootstrap_servers: Annotated[str | None, typer.Option(
        "--bootstrap-servers", "-b",
        help="The log (default: KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092).")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", help="Schema registry URL (default: SCHEMA_REGISTRY_URL).")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Postgres for migrate-db (default: DATABASE_URL).")] = None,
) -> None:
    """Run pipeline steps concurrently where their dependencies allow.

    Without STEP, every step runs: create-topics, register-schemas, migrate-db, generate-compose,
    build-images, deploy, and the steps the plugins contribute.

    A step whose inputs did not change since it last succeeded is up to date (state in
    .netscript/ next to the app file); --force runs it anyway.

    A failing step skips only its dependents; the exit code is 1 if any step failed.
    """
    from rich.console import Console

    from services.kernel import Settings
    from topology._errors import TopologyError
    from topology._pipeline import STATE_DIR, StepContext
    from topology._plugins import load_contribution
    from topology._steps import pipeline_for

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # piped: never fold a line
    settings = Settings.from_env("do")
    try:
        loaded = load_app(app)
        context = StepContext(
            app=loaded, contributions=tuple(load_contribution(p) for p in loaded.plugins),
            target=target, replication_factor=replication_factor,
            bootstrap_servers=bootstrap_servers or settings.kafka_bootstrap_servers,
            registry_url=registry or settings.schema_registry_url,
            database_url=database_url or settings.database_url)
        pipeline = pipeline_for(context)
        selected = pipeline.closure(steps) if steps else pipeline.steps
    except TopologyError as exc:
        raise fail(exc) from None
    if list_steps:
        console.print(steps_table(pipeline, {s.name for s in selected}))
        return
    report = asyncio.run(pipeline.run(context, targets=steps or (), force=force,
                                      state_dir=loaded.root / STATE_DIR,
                                      reporter=_Lines(console)))
    console.print(summary_table(report))
    if not report.ok:
        failed = ", ".join(r.step for r in report.failed)
        console.print(f"[red]failed:[/] {failed}")
        raise typer.Exit(1)


def steps_table(pipeline: Pipeline, selected: set[str]) -> Table:
    """The DAG as a table: each step, what it depends on, who contributed it."""
    from rich.table import Table

    table = Table(title="pipeline steps (dependencies first)", title_justify="left")
    for column in ("step", "depends on", "contributed by", "does"):
        table.add_column(column)
    for step in pipeline.steps:
        if step.name in selected:
            table.add_row(step.name, ", ".join(step.depends_on) or "-", step.contributed_by,
                          step.description)
    return table


def summary_table(report: PipelineReport) -> Table:
    """How each step ended, and why."""
    from rich.table import Table

    table = Table(title="summary", title_justify="left")
    for column in ("step", "status", "time", "detail"):
        table.add_column(column)
    for result in report.results:
        ran = result.finished - result.started
        table.add_row(result.step, f"{_MARKS[result.status.value]} {result.status.value}",
                      f"{ran:.1f}s" if ran else "", result.detail)
    return table


class _Lines:
    """Live progress as one status line per step event."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def step_started(self, step: Step) -> None:
        self._console.print(f"[blue]▶[/] {step.name} …")

    def step_finished(self, result: StepResult) -> None:
        self._console.print(f"{_MARKS[result.status.value]} {result.step}: "
                            f"{result.status.value}" + (f" — {result.detail}"
                                                         if result.detail else ""))

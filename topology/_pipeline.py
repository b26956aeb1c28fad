"""``netscript do``: named steps with dependencies, run concurrently where the DAG allows.

A :class:`Step` names what it depends on, an async action, and optionally a fingerprint of
its inputs and of its outputs. :class:`Pipeline` checks the steps form a DAG and runs a
selection of them (with their dependencies) in one :class:`asyncio.TaskGroup`: a step starts
as soon as every dependency finished. A step that raises fails alone: its dependents are
skipped ("dependency X failed"), every other branch runs on. A step that raises
:class:`StepSkipped` (no Docker) is skipped, not failed.

Caching: a step's key is the hash of its inputs and of its dependencies' keys and outputs;
:class:`PipelineState` keeps the key and the outputs' hash of each step that succeeded in
``.netscript/state.json``. A step whose key and outputs are unchanged is "up to date" and not
run (unless ``force``). A step without ``inputs`` always runs, and so do its dependents.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from topology._errors import DependencyCycleError, PipelineError, StepSkipped
from topology._model import Target

if TYPE_CHECKING:
    from topology._appfile import AppFile
    from topology._contribution import Contribution, ContributionContext, PluginSlice

STATE_DIR = ".netscript"
STATE_FILE = "state.json"

StepAction = Callable[["StepContext"], Awaitable[str | None]]
"""What a step does; it returns a one-line summary (or ``None``) and raises when it fails."""
Fingerprint = Callable[["StepContext"], object]
"""JSON-able data whose hash identifies a step's inputs or outputs (called in a thread)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StepContext:
    """What every step may use: the app, its plugins, and where the log, registry and
    database are (read from the environment once, by the command line)."""

    app: AppFile
    contributions: tuple[Contribution, ...]
    target: Target = Target.LOCAL
    bootstrap_servers: str = "127.0.0.1:9092"
    registry_url: str | None = None
    database_url: str | None = None
    replication_factor: int = 1

    def contribution_context(self) -> ContributionContext:
        from topology._contribution import ContributionContext

        return ContributionContext(app=self.app, target=self.target)

    def plugin_slices(self) -> Mapping[str, PluginSlice]:
        """What each plugin contributes (its topics, schemas), without resolving the graph."""
        from topology._contribution import GraphBuilder, compose_app_host

        return compose_app_host(GraphBuilder(), self.contribution_context(),
                                self.contributions).registry


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One named step of the pipeline."""

    name: str
    run: StepAction
    depends_on: tuple[str, ...] = ()
    inputs: Fingerprint | None = None
    """Without inputs the step is never "up to date": it runs every time."""
    outputs: Fingerprint | None = None
    """What the step produced as it is now (e.g. a file's text); changed outputs re-run it."""
    description: str = ""
    contributed_by: str = "core"


class StepStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    UP_TO_DATE = "up to date"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True, slots=True)
class StepResult:
    """How one step ended; ``started``/``finished`` are :func:`time.monotonic` readings."""

    step: str
    status: StepStatus
    detail: str = ""
    started: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not StepStatus.FAILED


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineReport:
    """Every selected step's result, in the pipeline's order."""

    results: tuple[StepResult, ...]

    @property
    def failed(self) -> tuple[StepResult, ...]:
        return tuple(r for r in self.results if r.status is StepStatus.FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed

    def result(self, step: str) -> StepResult:
        return next(r for r in self.results if r.step == step)


class Reporter(Protocol):
    """Live progress of a run (the command line prints status lines)."""

    def step_started(self, step: Step) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...


@dataclass(kw_only=True, slots=True)
class PipelineState:
    """The cache of ``.netscript/state.json``: each succeeded step's key and outputs' hash."""

    path: Path | None
    steps: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path | None) -> PipelineState:
        """The state kept in ``directory`` (``None``: nothing is cached)."""
        if directory is None:
            return cls(path=None)
        path = directory / STATE_FILE
        try:
            data = json.loads(path.read_text())
            steps = {str(k): dict(v) for k, v in data.get("steps", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            steps = {}  # missing or unreadable: everything runs, and the file is rewritten
        return cls(path=path, steps=steps)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"version": 1, "steps": self.steps}, indent=2,
                                        sort_keys=True) + "\n")
        os.replace(temporary, self.path)


def fingerprint(value: object) -> str:
    """The SHA-256 of ``value`` as canonical JSON (paths and other objects as strings)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Pipeline:
    """Steps checked to form a DAG, in an order where dependencies come first.

    Raises :class:`PipelineError` for a duplicate step name or an unknown dependency and
    :class:`DependencyCycleError` for a cycle.
    """

    def __init__(self, steps: Iterable[Step]) -> None:
        by_name: dict[str, Step] = {}
        for step in steps:
            if step.name in by_name:
                raise PipelineError(
                    step=step.name,
                    problem=f"contributed by both {by_name[step.name].contributed_by} and "
                            f"{step.contributed_by}; step names are unique: rename one")
            by_name[step.name] = step
        for step in by_name.values():
            for dependency in step.depends_on:
                if dependency not in by_name:
                    raise PipelineError(
                        step=step.name,
                        problem=f"depends on {dependency!r}, which no one contributes (steps: "
                                f"{', '.join(sorted(by_name))}); fix the name or install the "
                                f"plugin that adds it")
        self._by_name = by_name
        self.steps = tuple(by_name[name] for name in _order(by_name))

    def step(self, name: str) -> Step:
        try:
            return self._by_name[name]
        except KeyError:
            raise PipelineError(step=name, problem=f"no such step; the steps are "
                                f"{', '.join(s.name for s in self.steps)} (netscript do "
                                f"--list)") from None

    def closure(self, names: Iterable[str]) -> tuple[Step, ...]:
        """The steps ``names`` and everything they depend on, dependencies first."""
        wanted: set[str] = set()
        pending = [self.step(name).name for name in names]
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(self._by_name[name].depends_on)
        return tuple(s for s in self.steps if s.name in wanted)

    async def run(
        self,
        context: StepContext,
        *,
        targets: Sequence[str] = (),
        force: bool = False,
        state_dir: Path | None = None,
        reporter: Reporter | None = None,
    ) -> PipelineReport:
        """Run ``targets`` with their dependencies (no targets: every step)."""
        selected = self.closure(targets) if targets else self.steps
        state = await asyncio.to_thread(PipelineState.load, state_dir)
        run = _Run(context=context, state=state, force=force, reporter=reporter,
                   done={s.name: asyncio.Event() for s in selected})
        try:
            async with asyncio.TaskGroup() as group:
                for step in selected:
                    group.create_task(run.step(step), name=f"step {step.name}")
        finally:
            await asyncio.to_thread(state.save)
        return PipelineReport(results=tuple(run.results[s.name] for s in selected))


@dataclass(kw_only=True, slots=True)
class _Run:
    context: StepContext
    state: PipelineState
    force: bool
    reporter: Reporter | None
    done: dict[str, asyncio.Event]
    results: dict[str, StepResult] = field(default_factory=dict)
    keys: dict[str, str | None] = field(default_factory=dict)
    """What a dependent hashes of each finished step (``None``: it always runs)."""

    async def step(self, step: Step) -> None:
        try:
            for dependency in step.depends_on:
                await self.done[dependency].wait()
            result = await self._attempt(step)
            self.results[step.name] = result
            if self.reporter is not None:
                self.reporter.step_finished(result)
        finally:
            self.done[step.name].set()

    async def _attempt(self, step: Step) -> StepResult:
        now = time.monotonic()
        self.keys[step.name] = None
        for dependency in step.depends_on:
            before = self.results[dependency]
            if before.status in (StepStatus.FAILED, StepStatus.SKIPPED):
                return StepResult(step=step.name, status=StepStatus.SKIPPED, started=now,
                                  finished=now,
                                  detail=f"dependency {dependency} {before.status.value}")
        try:
            key = await self._key(step)
            saved = self.state.steps.get(step.name, {})
            fresh = key is not None and not self.force and saved.get("key") == key
            outputs = await self._outputs(step) if fresh else ""
        except Exception as exc:  # an unreadable input fails the step, not the run
            return StepResult(step=step.name, status=StepStatus.FAILED, started=now,
                              finished=time.monotonic(),
                              detail=f"cannot read its inputs: {type(exc).__name__}: {exc}")
        if fresh and key is not None and saved.get("outputs") == outputs:
            self.keys[step.name] = fingerprint([key, outputs])
            return StepResult(step=step.name, status=StepStatus.UP_TO_DATE, started=now,
                              finished=now, detail=saved.get("detail", ""))
        if self.reporter is not None:
            self.reporter.step_started(step)
        self.state.steps.pop(step.name, None)
        started = time.monotonic()
        try:
            detail = await step.run(self.context) or ""
        except StepSkipped as exc:
            return StepResult(step=step.name, status=StepStatus.SKIPPED, detail=exc.reason,
                              started=started, finished=time.monotonic())
        except Exception as exc:  # reported in the summary and the exit code, never lost
            return StepResult(step=step.name, status=StepStatus.FAILED,
                              detail=f"{type(exc).__name__}: {exc}", started=started,
                              finished=time.monotonic())
        finished = time.monotonic()
        if key is not None:
            try:
                outputs = await self._outputs(step)
            except Exception as exc:
                return StepResult(step=step.name, status=StepStatus.FAILED, started=started,
                                  finished=finished, detail=f"cannot read its outputs: "
                                                            f"{type(exc).__name__}: {exc}")
            self.state.steps[step.name] = {"key": key, "outputs": outputs, "detail": detail}
            self.keys[step.name] = fingerprint([key, outputs])
        return StepResult(step=step.name, status=StepStatus.SUCCEEDED, detail=detail,
                          started=started, finished=finished)

    async def _key(self, step: Step) -> str | None:
        if step.inputs is None:
            return None
        upstream: dict[str, Any] = {d: self.keys.get(d) for d in step.depends_on}
        if any(value is None for value in upstream.values()):
            return None  # a dependency that always runs makes its dependents run too
        inputs = await asyncio.to_thread(step.inputs, self.context)
        return fingerprint({"inputs": inputs, "dependencies": upstream})

    async def _outputs(self, step: Step) -> str:
        if step.outputs is None:
            return ""
        return fingerprint(await asyncio.to_thread(step.outputs, self.context))


def _order(steps: Mapping[str, Step]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise DependencyCycleError(cycle=[*path[path.index(name):], name])
        state[name] = 1
        for dependency in steps[name].depends_on:
            visit(dependency, [*path, name])
        state[name] = 2
        order.append(name)

    for name in steps:
        visit(name, [])
    return order

"""``netscript up``: the graph on this machine, every NetScript process a child process.

Each child starts only when what it references is ready (TCP for the log, ``/health/ready`` for
HTTP services, exit code 0 for ``init``), with exactly the environment ``compose.yaml`` gives it
except that every host is this machine; its output is copied to ours with its name in front. A
child that exits on its own is reported and restarted with backoff, and given up (stopping the
graph, exit code 1) after :attr:`RestartPolicy.max_failures` failures in a row. Ctrl-C or
SIGTERM stops the children in reverse dependency order; each is its own process group, so nothing
it spawned survives either, and (on Linux) each dies with ``netscript up`` should that be killed.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from topology._errors import MissingSecretError
from topology._graph import Graph, Node
from topology._model import Role, WaitFor
from topology._probes import tcp_ready
from topology._units import Board, Child, External, RestartPolicy, State, Unit

COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta",
          "bright_green", "bright_blue", "bright_yellow")
WIRED_KEYS = frozenset({"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "DATABASE_URL",
                        "REDIS_URL"})
WIRED_PREFIXES = ("services__", "OTEL_")
_SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def child_env(node: Node, *, base: Mapping[str, str], secrets: Mapping[str, str],
              drop: Iterable[str] = (), env_file: str = ".env") -> dict[str, str]:
    """The environment of ``node``'s process: ours, minus anything the graph wires, plus the
    node's own (secrets filled in from ``secrets``), minus ``drop``.

    Raises :class:`MissingSecretError` for a ``${SECRET}`` nobody set.
    """
    env = {k: v for k, v in base.items()
           if k not in WIRED_KEYS and not k.startswith(WIRED_PREFIXES)}
    skipped = set(drop)

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name not in secrets:
            raise MissingSecretError(secret=name, resource=node.name, env_file=env_file)
        return secrets[name]

    for key, value in node.env.items():
        if key not in skipped:
            env[key] = _SECRET_REF.sub(fill, value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_argv(node: Node) -> list[str]:
    """The command line of ``node``: ``netscript …`` runs as this interpreter's CLI."""
    executable = node.resource.executable
    if executable is None:
        return [sys.executable, "-m", "topology.cli", *node.command]
    if executable in ("python", "python3"):
        return [sys.executable, *node.command]
    return [executable, *node.command]


class Supervisor:
    """Runs a selection of a local graph until stopped or until a child is given up."""

    def __init__(
        self,
        graph: Graph,
        nodes: Sequence[Node],
        *,
        console: Console,
        secrets: Mapping[str, str],
        base_env: Mapping[str, str] | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.graph = graph
        self.nodes = list(nodes)
        self.console = console
        self.secrets = secrets
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.policy = policy or RestartPolicy()
        self.units: dict[str, Unit] = {}

    async def run(self, stop: asyncio.Event) -> int:
        """Start everything, wait for ``stop`` (or a failure), stop everything; an exit code."""
        started = time.monotonic()
        telemetry = self._telemetry()
        drop: set[str] = set()
        if telemetry is not None and not await _reachable(telemetry):
            drop = {k for n in self.nodes for k, src in n.wiring.items() if src == telemetry.name}
        self._build_units(drop)
        children = [u for u in self.units.values() if isinstance(u, Child)]
        board = Board()
        async with httpx.AsyncClient(timeout=1.0) as client:
            try:
                async with asyncio.TaskGroup() as tasks:
                    for unit in self.units.values():
                        tasks.create_task(self._run_unit(unit, board, client))
                    reporter = tasks.create_task(self._report(board, started, drop))
                    signalled = tasks.create_task(_forward(stop, board))
                    await board.wait_for(lambda: any(u.failed for u in self.units.values()))
                    failed = [u for u in self.units.values() if u.failed]
                    for unit in failed:
                        self.console.print(f"[bold red]netscript up: {unit.error}")
                    await board.stop()
                    self.console.print("stopping the graph (dependents first)")
                    for level in reversed(_levels(children, self.nodes)):
                        await asyncio.gather(*(c.terminate(self.policy.stop_grace)
                                               for c in level))
                    signalled.cancel()
                    reporter.cancel()
                    count = len(children)
                    self.console.print(f"stopped {count} process{'' if count == 1 else 'es'}")
            finally:
                for child in children:
                    child.kill_now()
        return 1 if any(u.failed for u in self.units.values()) else 0

    def _telemetry(self) -> Node | None:
        return next((n for n in self.nodes if n.resource.role is Role.TELEMETRY), None)

    def _build_units(self, drop: set[str]) -> None:
        processes = [n for n in self.nodes if n.resource.is_process and n.resource.managed]
        width = max((len(n.name) for n in processes), default=8)
        for index, node in enumerate(self.nodes):
            color = COLORS[index % len(COLORS)]
            if node in processes:
                self.units[node.name] = Child(
                    node, self.console, color, argv=child_argv(node),
                    env=child_env(node, base=self.base_env, secrets=self.secrets, drop=drop),
                    cwd=self.graph.app.root, width=width)
            else:
                self.units[node.name] = External(node, self.console, color)
        if drop:
            telemetry = self._telemetry()
            assert telemetry is not None
            self.units[telemetry.name].state = State.UNREACHABLE

    async def _run_unit(self, unit: Unit, board: Board, client: httpx.AsyncClient) -> None:
        if isinstance(unit, Child):
            deps = [self.units[d.name] for d in unit.node.dependencies
                    if d.wait is not WaitFor.STARTED and d.name in self.units]
            await unit.run(board, deps, client, self.policy)
        elif isinstance(unit, External):
            if unit.state is State.UNREACHABLE:
                return
            required = any(d.name == unit.name and d.wait is WaitFor.HEALTHY
                           for n in self.nodes if n.name in self.units for d in n.dependencies)
            await unit.run(board, client, required=required, policy=self.policy)

    async def _report(self, board: Board, started: float, drop: set[str]) -> None:
        await board.wait_for(lambda: all(u.ready_once or u.state is State.UNREACHABLE
                                         for u in self.units.values()))
        if board.stopping:
            return
        self.console.print(self.table())
        log = self.graph.role(Role.LOG)
        bootstrap = next((n.env["KAFKA_BOOTSTRAP_SERVERS"] for n in self.nodes
                          if "KAFKA_BOOTSTRAP_SERVERS" in n.env),
                         log.url if log is not None and log.name in self.units else None)
        if bootstrap is not None:
            self.console.print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}  (Ctrl-C stops everything)")
        if drop:
            self.console.print("[yellow]the Aspire dashboard is not running: telemetry is off "
                               "(`docker compose up -d aspire-dashboard` and restart to see "
                               "traces at http://127.0.0.1:18888)")
        self.console.print(f"[bold green]ready in {time.monotonic() - started:.2f}s")

    def table(self) -> Table:
        """Every resource with its kind, URL and state."""
        table = Table(title=f"{self.graph.app.name}: netscript up")
        for column in ("resource", "kind", "url", "state", "pid"):
            table.add_column(column, no_wrap=column != "url")
        for unit in self.units.values():
            node = unit.node
            kind = node.resource.kind.value + ("" if node.resource.managed else " (external)")
            state = unit.state.value
            if isinstance(unit, External) and unit.state is State.EXTERNAL:
                state = "external, reachable" if node.resource.endpoints else "external"
            pid = str(unit.pid) if isinstance(unit, Child) and unit.pid else ""
            style = {"healthy": "green", "done": "green", "failed": "red",
                     "not running": "yellow"}.get(unit.state.value, "")
            table.add_row(unit.name, kind, node.url or "", f"[{style}]{state}" if style else state,
                          pid)
        return table


async def _forward(stop: asyncio.Event, board: Board) -> None:
    await stop.wait()
    await board.stop()


async def _reachable(node: Node) -> bool:
    endpoint = node.resource.endpoint("otlp-http") or node.resource.endpoint()
    if endpoint is None:
        return False
    return await tcp_ready(node.host, node.ports[endpoint.name], timeout=0.3)


def _levels(children: Sequence[Child], nodes: Sequence[Node]) -> list[list[Child]]:
    """Children grouped by depth in the graph: dependencies before dependents."""
    by_name = {c.name: c for c in children}
    depth: dict[str, int] = {}
    for node in nodes:  # nodes are in dependency order
        if node.name in by_name:
            depth[node.name] = 1 + max((depth[d.name] for d in node.dependencies
                                        if d.name in depth), default=-1)
    levels: list[list[Child]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name, level in depth.items():
        levels[level].append(by_name[name])
    return levels


def selection(graph: Graph, only: Sequence[str]) -> list[Node]:
    """The nodes ``--only`` selects, with everything they depend on (all without ``only``)."""
    return list(graph.closure(only) if only else graph.nodes)


def load_secrets(env_file: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secret values: ``.env`` next to the app file, overridden by the environment."""
    from topology._compose import read_env_file

    return {**read_env_file(env_file), **(os.environ if environ is None else environ)}

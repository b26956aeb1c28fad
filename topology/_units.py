"""What ``netscript up`` supervises: one :class:`Child` per NetScript process of the graph and
one :class:`External` per container it does not run but may wait for.

Units share a :class:`Board`: a condition every state change notifies, so a unit waiting for its
dependencies (or a backoff interrupted by Ctrl-C) wakes exactly when something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx
from rich.console import Console
from rich.text import Text

from topology._graph import Node
from topology._probes import POLL_INTERVAL, port_is_free, probe


class State(StrEnum):
    """Where a unit is in its life."""

    WAITING = "waiting"
    STARTING = "starting"
    HEALTHY = "healthy"
    DONE = "done"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"
    EXTERNAL = "external"
    UNREACHABLE = "not running"


@dataclass(frozen=True, kw_only=True, slots=True)
class RestartPolicy:
    """How ``netscript up`` treats a child that exits on its own or never gets ready."""

    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_failures: int = 5
    """Consecutive failures after which a child is given up (and the graph stopped)."""
    stable_after: float = 30.0
    """A child ready this long before it crashed starts counting failures afresh."""
    ready_timeout: float = 60.0
    stop_grace: float = 10.0
    external_timeout: float = 60.0


class Board:
    """The supervisor's shared state: who is ready or failed, and whether we are stopping."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self.stopping = False

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float | None = None
                       ) -> bool:
        """Wait until ``predicate()`` or stopping; ``False`` if ``timeout`` passed first."""
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self.stopping or predicate())
            except TimeoutError:
                return False
        return True

    async def stop(self) -> None:
        self.stopping = True
        await self.notify()


class Unit:
    """A resource as ``netscript up`` sees it."""

    def __init__(self, node: Node, console: Console, color: str) -> None:
        self.node = node
        self.console = console
        self.color = color
        self.state = State.WAITING
        self.ready_once = False
        self.failed = False
        self.error: str | None = None

    @property
    def name(self) -> str:
        return self.node.name

    def say(self, message: str, *, style: str = "") -> None:
        self.console.print(Text.assemble((f"{self.name} ", f"bold {self.color}"), (message, style)))

    async def set(self, board: Board, state: State, *, error: str | None = None) -> None:
        self.state = state
        if state in (State.HEALTHY, State.DONE, State.EXTERNAL):
            self.ready_once = True
        if state is State.FAILED:
            self.failed = True
            self.error = error
        await board.notify()


class External(Unit):
    """A container ``netscript up`` does not run (Postgres, the dashboard, Redpanda).

    When a child needs it healthy, it is probed on its published port until it answers.
    """

    async def run(self, board: Board, client: httpx.AsyncClient, *, required: bool,
                  policy: RestartPolicy) -> None:
        if not self.node.resource.managed or not self.node.resource.endpoints:
            await self.set(board, State.EXTERNAL)
            return
        deadline = time.monotonic() + (policy.external_timeout if required else 0.5)
        if required and not await probe(self.node, client):
            self.say(f"waiting for {self.node.url} (not started by netscript up: "
                     f"`docker compose up -d {self.node.resource.provided_by or self.name}`)",
                     style="yellow")
        while not board.stopping:
            if await probe(self.node, client):
                await self.set(board, State.EXTERNAL)
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_INTERVAL)
        self.state = State.UNREACHABLE
        if required and not board.stopping:
            await self.set(board, State.FAILED, error=(
                f"{self.name} does not answer at {self.node.url}: start it "
                f"(`docker compose up -d {self.node.resource.provided_by or self.name}`) or "
                f"point netscript.toml at one that runs"))
        await board.notify()


class Child(Unit):
    """One NetScript process: started once its dependencies are ready, probed until healthy,
    restarted with backoff when it exits on its own, stopped with SIGTERM to its process group.
    """

    def __init__(self, node: Node, console: Console, color: str, *, argv: Sequence[str],
                 env: dict[str, str], cwd: Path, width: int) -> None:
        super().__init__(node, console, color)
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.width = width
        self.process: asyncio.subprocess.Process | None = None
        self.failures = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def run(self, board: Board, dependencies: Sequence[Unit], client: httpx.AsyncClient,
                  policy: RestartPolicy) -> None:
        await board.wait_for(lambda: all(d.ready_once for d in dependencies)
                             or any(d.failed for d in dependencies))
        if board.stopping:
            return
        broken = [d.name for d in dependencies if d.failed and not d.ready_once]
        if broken:
            await self.set(board, State.FAILED, error=f"not started: {', '.join(broken)} failed")
            return
        first = True
        while not board.stopping:
            retry = await self._attempt(board, client, policy, first=first)
            first = False
            if not retry:
                return

    async def _attempt(self, board: Board, client: httpx.AsyncClient, policy: RestartPolicy,
                       *, first: bool) -> bool:
        """Run the process once; whether to run it again."""
        busy = self._busy_port()
        if busy is not None and first:
            await self.set(board, State.FAILED, error=(
                f"port {busy} of {self.name} is in use: stop what listens there or pass "
                f"--port {self.name}=PORT"))
            self.say(self.error or "", style="bold red")
            return False
        await self.set(board, State.STARTING)
        if board.stopping:
            return False
        self.process = await asyncio.create_subprocess_exec(
            *_dies_with_us(self.argv), env=self.env, cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            # Its own process group: Ctrl-C reaches only us, and we stop it (and anything it
            # spawned) in dependency order.
            start_new_session=True,
        )
        process = self.process
        if board.stopping:  # stopped while it was being spawned: the stop missed it
            await self.terminate(policy.stop_grace)
        healthy_at: float | None = None
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._pump(process))
            if not self.node.resource.once:
                outcome = await self._until_ready(process, board, client, policy)
                if outcome == "ready":
                    healthy_at = time.monotonic()
                    if self.restarts:
                        self.say(f"is healthy again at {self.node.url}", style="green")
                    await self.set(board, State.HEALTHY)
                elif outcome == "timeout":
                    self.say(f"did not get ready within {policy.ready_timeout:g}s",
                             style="bold red")
                    await self.terminate(policy.stop_grace)
            await process.wait()
        code = process.returncode
        if board.stopping:
            await self.set(board, State.STOPPED)
            return False
        if self.node.resource.once and code == 0:
            await self.set(board, State.DONE)
            return False
        stable = healthy_at is not None and time.monotonic() - healthy_at >= policy.stable_after
        self.failures = 1 if stable else self.failures + 1
        self.say(f"exited ({_describe(code)})", style="bold red")
        if self.failures >= policy.max_failures:
            await self.set(board, State.FAILED, error=(
                f"{self.name} failed {self.failures} times in a row (last: {_describe(code)}); "
                f"its output is above"))
            return False
        backoff = min(policy.initial_backoff * 2 ** (self.failures - 1), policy.max_backoff)
        self.say(f"restarting in {backoff:g}s (failure {self.failures} of "
                 f"{policy.max_failures})", style="yellow")
        await self.set(board, State.RESTARTING)
        await board.wait_for(lambda: False, timeout=backoff)
        self.restarts += 1
        return not board.stopping

    def _busy_port(self) -> int | None:
        endpoint = self.node.resource.endpoint()
        if endpoint is None:
            return None
        port = self.node.ports[endpoint.name]
        return None if port_is_free(self.node.host, port) else port

    async def _until_ready(self, process: asyncio.subprocess.Process, board: Board,
                           client: httpx.AsyncClient, policy: RestartPolicy) -> str:
        deadline = time.monotonic() + policy.ready_timeout
        while True:
            if process.returncode is not None:
                return "exited"
            if board.stopping:
                return "stopping"
            if await probe(self.node, client):
                return "ready"
            if time.monotonic() > deadline:
                return "timeout"
            await asyncio.sleep(POLL_INTERVAL)

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        """Copy the child's output to ours, each line prefixed with its name."""
        assert process.stdout is not None
        prefix = f"{self.name:<{self.width}} │ "
        while line := await process.stdout.readline():
            self.console.print(Text.assemble(
                (prefix, self.color), line.decode(errors="replace").rstrip()))

    async def terminate(self, grace: float) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await process.wait()
        except TimeoutError:
            self.say(f"did not stop within {grace:g}s; killing it", style="yellow")
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        # Whatever it spawned goes with it.
        _signal_group(process.pid, signal.SIGKILL)

    def kill_now(self) -> None:
        """Last resort when the supervisor itself fails: no child outlives it."""
        if self.process is not None and self.process.returncode is None:
            _signal_group(self.process.pid, signal.SIGKILL)


# Exec'd in the child before its real command (Linux): if `netscript up` itself is killed with
# SIGKILL and cannot stop its children, the kernel kills them (PR_SET_PDEATHSIG survives exec).
_DEATH_SIGNAL = """\
import ctypes, os, sys
ctypes.CDLL(None).prctl(1, 9)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _dies_with_us(argv: Sequence[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-S", "-c", _DEATH_SIGNAL, str(os.getpid()), *argv]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"

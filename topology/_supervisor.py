"""``netscript up``: start every process of the local graph and stop them together.

Each service runs as its own OS process (never a thread inside another service), so a crash of
one is visible and the others keep their state on the log.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from services._net import wait_until_listening


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessSpec:
    """One process of the local graph."""

    name: str
    args: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)


def local_graph(
    *, host: str, log_port: int, data_dir: Path, streams_port: int = 4437,
    registry_port: int = 8081,
) -> list[ProcessSpec]:
    """The processes ``netscript up`` runs; later capabilities add theirs here."""
    cli = [sys.executable, "-m", "topology.cli"]
    return [
        ProcessSpec(
            name="log",
            args=[
                *cli,
                "log",
                "serve",
                "--host",
                host,
                "--port",
                str(log_port),
                "--data-dir",
                str(data_dir / "log"),
            ],
            port=log_port,
        ),
        ProcessSpec(
            name="streams",
            args=[*cli, "streams", "serve", "--host", host, "--port", str(streams_port)],
            port=streams_port,
            env={"KAFKA_BOOTSTRAP_SERVERS": f"{host}:{log_port}"},
        ),
        ProcessSpec(
            name="registry",
            args=[*cli, "registry", "serve", "--host", host, "--port", str(registry_port)],
            port=registry_port,
            env={"KAFKA_BOOTSTRAP_SERVERS": f"{host}:{log_port}"},
        ),
    ]


async def supervise(specs: list[ProcessSpec], *, host: str, stop: asyncio.Event) -> int:
    """Start ``specs`` in order, report their addresses, and stop them all on ``stop``.

    Returns a non-zero exit code if a process failed to start or died.
    """
    console = Console()
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for spec in specs:
            process = await asyncio.create_subprocess_exec(
                *spec.args, env={**os.environ, **spec.env})
            processes[spec.name] = process
            ready = await asyncio.to_thread(wait_until_listening, host, spec.port, timeout=30)
            if not ready or process.returncode is not None:
                console.print(f"[red]{spec.name} did not start listening on {host}:{spec.port}")
                return 1
            console.print(f"[green]{spec.name}[/] listening on {host}:{spec.port}")
        console.print(f"KAFKA_BOOTSTRAP_SERVERS={host}:{specs[0].port}  (Ctrl-C stops everything)")
        exited = asyncio.ensure_future(
            asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in processes.values()],
                return_when=asyncio.FIRST_COMPLETED,
            )
        )
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([exited, stopped], return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        stopped.cancel()
        for name, process in processes.items():
            if process.returncode is not None and not stop.is_set():
                console.print(f"[red]{name} exited with code {process.returncode}")
                return 1
        return 0
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.terminate()
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

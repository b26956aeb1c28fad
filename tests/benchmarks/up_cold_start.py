"""Cold start of the whole local graph: `netscript up` until every resource is healthy.

A measurement, not a test (pytest does not collect it):

    .venv/bin/python tests/benchmarks/up_cold_start.py [--runs 3]

Each run starts `netscript up` on free ports with a fresh data directory and times, from the
moment the process is spawned, until the log accepts connections and every HTTP service of the
graph answers `/health/ready` with 200; then it stops the graph with SIGTERM and checks that no
child process survives. The peer named by the issue — an Aspire AppHost starting the same graph
in containers ("tens of seconds") — cannot run here (no Docker daemon, no .NET), so its figure is
printed as not measured rather than invented.
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

GOAL_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def one_run() -> float:
    ports = {"log": free_port(), "streams": free_port(), "registry": free_port()}
    with tempfile.TemporaryDirectory() as data:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "topology.cli", "up", "--data-dir", str(Path(data)),
             "--log-port", str(ports["log"]), "--streams-port", str(ports["streams"]),
             "--registry-port", str(ports["registry"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = started + 60
            while not (listening(ports["log"]) and ready(ports["streams"])
                       and ready(ports["registry"])):
                if process.poll() is not None or time.perf_counter() > deadline:
                    raise SystemExit(f"the graph did not become healthy (exit {process.poll()})")
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            children = psutil.Process(process.pid).children(recursive=True)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        _, alive = psutil.wait_procs(children, timeout=10)
        if alive:
            raise SystemExit(f"{len(alive)} child process(es) survived SIGTERM")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = [one_run() for _ in range(args.runs)]
    median = statistics.median(times)
    print("netscript up, cold start to all-healthy (log, registry, init, streams)")
    print("  runs: " + ", ".join(f"{t:.2f} s" for t in times))
    print(f"  ours (median): {median:.2f} s")
    print("  peer (Aspire AppHost with containers): not measured here — no Docker daemon or .NET")
    print(f"  goal: under {GOAL_SECONDS:.0f} s — {'met' if median < GOAL_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()

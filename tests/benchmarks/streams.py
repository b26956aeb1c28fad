"""Durable Streams: our streams server on our log against the Node reference server.

A measurement, not a test (pytest does not collect it). Run it on a quiet machine:

    .venv/bin/python tests/benchmarks/streams.py [--quick] [--servers ours,memory,file] [--keep]

Needs ``node`` and ``npm ci`` in tests/streams/conformance (the reference server,
``@durable-streams/server``, and undici for the load generator come from there).

One run starts three servers, each a separate process on a free port, and keeps them up for the
whole run:

* ours: a fresh embedded log (``netscript log serve``, temp data directory) and our streams
  server on it (``netscript streams serve``); every append is acknowledged once the log has it
  (the streams server's producer uses acks=all, which our log fsyncs before answering);
* memory: the reference ``DurableStreamTestServer`` in memory (nothing durable);
* file: the reference server file-backed (``--data-dir``; it fdatasyncs every append).

The load comes from ``streams_load.mjs`` (Node, undici keep-alive connections, no client
library), one process per phase and server, so the client is not the bottleneck. Every phase
first does untimed warm-up requests (on a separate stream, or a first read pass), then waits
for a go on stdin: the servers' CPU is sampled right before the go and right after the result.
Phases run in this order, each against all three servers before the next (so a burst of load
from elsewhere on the machine hits the servers alike):

1. append, sequential: one writer, one POST per message, each waiting for the previous;
2. append, 16 writers: 16 sequential writers on one stream, one POST per message;
3. append, batches of 100: one writer, a JSON array of 100 messages per POST;
4. read-back: catch-up GETs from offset -1 following Stream-Next-Offset until Stream-Up-To-Date,
   of the stream phase 3 wrote, read 5 times over (and, as a second figure, of the stream
   phase 2 wrote, one message per append, read 20 times over), after one untimed pass; every
   message is counted and checked for order;
5. SSE latency: a reader on ``?offset=now&live=sse``; a writer appends one message at a time and
   waits for both the POST's answer and the data event before the next; latency is from just
   before the POST to the arrival of the event.

Messages are JSON objects of 100 bytes on an ``application/json`` stream. Reported: msg/s (or
ms), the ratio ours/memory, the CPU seconds each server process used during the timed part
(ours: streams server and log broker separately), the Node client's CPU seconds, and each
process's peak RSS (VmHWM) at the end. A wrong count or a failed request is an error and makes
the exit code 1; missing the goal does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _support import DeferredSignals, ProcSample, sample  # type: ignore[import-not-found]
from rich.console import Console
from rich.table import Table

from services.log.testing import BrokerProcess, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO / "tests" / "streams" / "conformance"
LOAD = Path(__file__).resolve().with_name("streams_load.mjs")
HOST = "127.0.0.1"
SERVERS = ("ours", "memory", "file")
SERVER_TITLES = {"ours": "ours", "memory": "ref in-memory", "file": "ref file-backed"}
GOAL_RATIO = 1.0
PHASE_TIMEOUT_S = 900.0
START_TIMEOUT_S = 60.0
LONG_POLL_TIMEOUT_S = 3
MESSAGE_BYTES = 100
CONCURRENT_WRITERS = 16
BATCH = 100
# Environment our streams server must not inherit (a secret would make it demand a token).
SCRUBBED_ENV = (
    "STREAMS_SECRET",
    "DURABLE_STREAMS_SECRET",
    "STREAMS_PORT",
    "PORT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BenchmarkError(Exception):
    """A run that produced wrong results or could not run (not a slow one)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Sizes:
    sequential: int
    concurrent: int
    batched: int
    sse: int
    warmup: int  # untimed requests before each phase


FULL = Sizes(sequential=3000, concurrent=20_000, batched=200_000, sse=2000, warmup=400)
QUICK = Sizes(sequential=300, concurrent=2000, batched=20_000, sse=200, warmup=100)


@dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    """One timed phase: what the load generator runs (the report's rows are in ROWS)."""

    key: str
    phase: str  # the load generator's --phase
    stream: str  # the stream's name (read figures name the stream an append figure wrote)
    count: Callable[[Sizes], int]
    writers: int = 1
    batch: int = 1
    passes: int = 1  # read figures: how many times the stream is read in the timed part


FIGURES = (
    Figure(key="seq", phase="append", stream="seq", count=lambda s: s.sequential),
    Figure(
        key="conc",
        phase="append",
        stream="conc",
        count=lambda s: s.concurrent,
        writers=CONCURRENT_WRITERS,
    ),
    Figure(key="batch", phase="append", stream="batch", count=lambda s: s.batched, batch=BATCH),
    Figure(key="read-batch", phase="read", stream="batch", count=lambda s: s.batched, passes=5),
    Figure(
        key="read-conc",
        phase="read",
        stream="conc",
        count=lambda s: s.concurrent,
        writers=CONCURRENT_WRITERS,
        passes=20,
    ),
    Figure(key="sse", phase="sse", stream="sse", count=lambda s: s.sse),
)
# Report rows: (figure key[:SSE result key], unit, title); msg/s is better higher, ms lower.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("seq", "msg/s", "1. append msg/s, sequential (1 msg/POST)"),
    ("conc", "msg/s", f"2. append msg/s, {CONCURRENT_WRITERS} writers (1 msg/POST)"),
    ("batch", "msg/s", f"3. append msg/s, batches of {BATCH}"),
    ("read-batch", "msg/s", f"4. read-back msg/s ({BATCH}-msg appends)"),
    ("read-conc", "msg/s", "4b. read-back msg/s (1-msg appends)"),
    ("sse:p50_ms", "ms", "5. SSE append→event p50 ms"),
    ("sse:p99_ms", "ms", "5. SSE append→event p99 ms"),
)


# --- processes -----------------------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Server:
    """A running server under test: its stream base URL and the processes that serve it."""

    name: str
    base: str  # origin, e.g. http://127.0.0.1:4437
    pids: dict[str, int]  # role -> pid ("streams", "log" for ours; "server" for the reference)
    start: dict[str, ProcSample] = field(default_factory=dict)

    def stream_url(self, run_id: str, stream: str) -> str:
        return f"{self.base}/v1/stream/bench/{run_id}/{stream}"

    def cpu(self) -> dict[str, float]:
        return {role: sample(pid).cpu_s for role, pid in self.pids.items()}

    def check_alive(self) -> None:
        for role, pid in self.pids.items():
            if not Path(f"/proc/{pid}").exists():
                raise BenchmarkError(f"{self.name}: the {role} process ({pid}) is gone")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                raise BenchmarkError(f"{self.name}: the {role} process ({pid}) exited")


SIGNALS = DeferredSignals()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    with SIGNALS.deferred():
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(extra)
    return env


@contextlib.contextmanager
def run_ours(workdir: Path) -> Iterator[Server]:
    """A fresh embedded log and our streams server on it."""
    broker = BrokerProcess(workdir / "log-data", host=HOST, log_file=workdir / "log.out")
    streams: subprocess.Popen[bytes] | None = None
    try:
        with SIGNALS.deferred():
            broker.start()
        port = free_port(HOST)
        with SIGNALS.deferred(), open(workdir / "streams.out", "ab") as out:
            streams = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "topology.cli",
                    "streams",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--long-poll-timeout",
                    str(LONG_POLL_TIMEOUT_S),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=child_env(
                    KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, PYTHONUNBUFFERED="1"
                ),
            )
        try:
            wait_for_port(HOST, port, timeout=START_TIMEOUT_S)
        except Exception as exc:
            raise BenchmarkError(
                "our streams server did not start:\n"
                + (workdir / "streams.out").read_text(errors="replace")[-2000:]
            ) from exc
        yield Server(
            name="ours",
            base=f"http://{HOST}:{port}",
            pids={"streams": streams.pid, "log": broker.pid},
        )
    finally:
        if streams is not None:
            stop_process(streams)
        with SIGNALS.deferred():
            broker.stop(timeout=30)


@contextlib.contextmanager
def run_reference(workdir: Path, *, file_backed: bool) -> Iterator[Server]:
    """The reference server (tests/streams/conformance/reference-server.mjs), in memory or not."""
    name = "file" if file_backed else "memory"
    out_path = workdir / f"reference-{name}.out"
    err_path = workdir / f"reference-{name}.err"
    args = [
        "node",
        "reference-server.mjs",
        "--port",
        "0",
        "--host",
        HOST,
        "--long-poll-timeout-ms",
        str(LONG_POLL_TIMEOUT_S * 1000),
    ]
    if file_backed:
        data_dir = workdir / "reference-file-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--data-dir", str(data_dir)]
    process: subprocess.Popen[bytes] | None = None
    try:
        with SIGNALS.deferred(), open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(
                args, stdout=out, stderr=err, cwd=CONFORMANCE, env=child_env()
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        url = ""
        while not url:
            # The file-backed store logs its recovery on stdout before the URL line.
            lines = out_path.read_text(errors="replace").splitlines(keepends=True)
            url = next(
                (line.strip() for line in lines if line.startswith("http") and line.endswith("\n")),
                "",
            )
            if url:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(
                    f"the reference server ({name}) did not start:\n"
                    + err_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)
        yield Server(name=name, base=url.rstrip("/"), pids={"server": process.pid})
    finally:
        if process is not None:
            stop_process(process)


RUNNERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Server]]] = {
    "ours": run_ours,
    "memory": lambda workdir: run_reference(workdir, file_backed=False),
    "file": lambda workdir: run_reference(workdir, file_backed=True),
}


# --- one phase against one server ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    figure: str
    server: str
    data: dict[str, Any]  # the load generator's JSON
    server_cpu_s: dict[str, float]  # role -> CPU seconds during the timed part

    @property
    def msgs_per_s(self) -> float:
        return float(self.data["messages"]) / float(self.data["seconds"])

    def value(self, metric: str) -> float:
        return self.msgs_per_s if metric == "msg/s" else float(self.data[metric])


def run_phase(
    figure: Figure, server: Server, *, run_id: str, sizes: Sizes, workdir: Path
) -> Result:
    """Run the load generator for ``figure`` against ``server``; CPU sampled around the go."""
    server.check_alive()
    count = figure.count(sizes)
    args = [
        "node",
        str(LOAD),
        "--url",
        server.stream_url(run_id, figure.stream),
        "--phase",
        figure.phase,
        "--count",
        str(count),
        "--writers",
        str(figure.writers),
        "--batch",
        str(figure.batch),
        "--passes",
        str(figure.passes),
        "--size",
        str(MESSAGE_BYTES),
        "--warmup",
        str(sizes.warmup),
        "--wait-for-go",
    ]
    err_path = workdir / f"load-{server.name}-{figure.key}.err"
    with open(err_path, "wb") as err, SIGNALS.deferred():
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=CONFORMANCE
        )
    watchdog = threading.Timer(PHASE_TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        ready = process.stdout.readline()
        if not ready:
            raise BenchmarkError(_load_failure(figure, server, process, err_path))
        before = server.cpu()
        process.stdin.write(b"go\n")
        process.stdin.flush()
        line = process.stdout.readline()
        after = server.cpu()
        if process.wait() != 0 or not line:
            raise BenchmarkError(_load_failure(figure, server, process, err_path))
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    data = json.loads(line)
    if data.get("messages") != count * figure.passes:
        raise BenchmarkError(
            f"{figure.key} on {server.name}: {data.get('messages')} messages, expected "
            f"{count * figure.passes}"
        )
    return Result(
        figure=figure.key,
        server=server.name,
        data=data,
        server_cpu_s={role: after[role] - before[role] for role in before},
    )


def _load_failure(
    figure: Figure, server: Server, process: subprocess.Popen[bytes], err_path: Path
) -> str:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    return (
        f"{figure.key} on {server.name}: the load generator exited with "
        f"{process.returncode}: " + err_path.read_text(errors="replace")[-2000:]
    )


# --- report --------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if unit == "msg/s" else f"{value:.2f}"


def _row_value(results: dict[tuple[str, str], Result], key: str, server: str) -> float | None:
    figure_key, _, metric = key.partition(":")
    result = results.get((figure_key, server))
    if result is None:
        return None
    return result.value(metric or "msg/s")


def report(
    console: Console,
    results: dict[tuple[str, str], Result],
    servers: Sequence[Server],
    sizes: Sizes,
    errors: list[str],
) -> None:
    names = [s.name for s in servers]
    table = Table(title=f"Durable Streams, {MESSAGE_BYTES}-byte JSON messages")
    table.add_column("figure", justify="left")
    for name in names:
        table.add_column(SERVER_TITLES[name], justify="right")
    table.add_column("ours/in-memory", justify="right")
    table.add_column("ours/file", justify="right")
    verdicts: list[str] = []
    for key, unit, title in ROWS:
        values = {name: _row_value(results, key, name) for name in names}
        ours = values.get("ours")
        ratios = {}
        for peer in ("memory", "file"):
            theirs = values.get(peer)
            ratios[peer] = ours / theirs if ours is not None and theirs else None
        memory_ratio = ratios["memory"]
        if memory_ratio is not None:
            # Throughput: ours/reference >= 1; latency: ours/reference <= 1.
            met = memory_ratio >= GOAL_RATIO if unit == "msg/s" else memory_ratio <= GOAL_RATIO
            verdicts.append(
                f"{title}: ours {_fmt(ours, unit)} vs {_fmt(values['memory'], unit)}"
                f" = {memory_ratio:.2f}x — {'met' if met else 'NOT met'}"
            )
        table.add_row(
            title,
            *(_fmt(values[name], unit) for name in names),
            *("—" if r is None else f"{r:.2f}" for r in ratios.values()),
        )
    console.print(table)
    console.print(
        f"Counts: {sizes.sequential:,} sequential, {sizes.concurrent:,} by "
        f"{CONCURRENT_WRITERS} writers, {sizes.batched:,} in batches of {BATCH} (read back: the "
        f"batched stream 5 times, the {CONCURRENT_WRITERS}-writer stream 20 times), "
        f"{sizes.sse:,} SSE round trips; "
        f"{sizes.warmup} untimed warm-up requests before each. For latency rows a ratio below "
        "1 is better."
    )

    cpu = Table(title="CPU seconds during each timed phase (utime+stime from /proc)")
    cpu.add_column("figure", justify="left")
    roles = [(s.name, role) for s in servers for role in s.pids]
    for name, role in roles:
        cpu.add_column(
            f"{SERVER_TITLES[name]} {role}" if name == "ours" else SERVER_TITLES[name],
            justify="right",
        )
    if "ours" in names:
        cpu.add_column("ours total", justify="right")
    for name in names:
        cpu.add_column(f"client ({SERVER_TITLES[name]})", justify="right")
    cpu.add_column("wall s (ours)", justify="right")
    for figure in FIGURES:
        row = [figure.key]
        for name, role in roles:
            result = results.get((figure.key, name))
            row.append("—" if result is None else f"{result.server_cpu_s[role]:.2f}")
        if "ours" in names:
            result = results.get((figure.key, "ours"))
            row.append("—" if result is None else f"{sum(result.server_cpu_s.values()):.2f}")
        for name in names:
            result = results.get((figure.key, name))
            row.append("—" if result is None else f"{result.data['client_cpu_s']:.2f}")
        result = results.get((figure.key, "ours"))
        row.append("—" if result is None else f"{result.data['seconds']:.2f}")
        cpu.add_row(*row)
    console.print(cpu)

    for server in servers:
        with contextlib.suppress(OSError, KeyError):
            parts = []
            for role, pid in server.pids.items():
                now = sample(pid)
                parts.append(
                    f"{role} start {server.start[role].rss_mb:.0f} MB, "
                    f"now {now.rss_mb:.0f} MB, peak {now.hwm_mb:.0f} MB"
                )
            console.print(f"memory, {SERVER_TITLES[server.name]}: " + "; ".join(parts))
    sse = [results.get(("sse", name)) for name in names]
    for name, result in zip(names, sse, strict=True):
        if result is not None:
            d = result.data
            console.print(
                f"SSE, {SERVER_TITLES[name]}: p50 {d['p50_ms']:.2f} p90 {d['p90_ms']:.2f} "
                f"p99 {d['p99_ms']:.2f} max {d['max_ms']:.2f} mean {d['mean_ms']:.2f} ms; the "
                f"POST alone p50 {d['append_p50_ms']:.2f} p99 {d['append_p99_ms']:.2f} ms"
            )

    console.print(
        f"\n[bold]Goal: ours >= {GOAL_RATIO}x the in-memory reference on every figure[/bold]"
    )
    for verdict in verdicts:
        console.print(f"  {verdict}")
    if verdicts:
        overall = "MET" if all(v.endswith("— met") for v in verdicts) and not errors else "NOT MET"
    else:
        overall = "not judged (needs --servers with ours and memory)"
    console.print(f"[bold]Overall: {overall}[/bold]")
    for error in errors:
        console.print(f"[red]error:[/red] {error}")


# --- main ----------------------------------------------------------------------------------------


def parse_servers(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in SERVERS]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SERVERS)}; got {text!r}")
    return items


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~10x smaller smoke run")
    parser.add_argument(
        "--servers",
        type=parse_servers,
        default=list(SERVERS),
        help="which servers to measure (default: ours,memory,file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    return parser.parse_args(argv)


def check_prerequisites() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("@durable-streams/server", "undici"):
        if not (CONFORMANCE / "node_modules" / package / "package.json").exists():
            return f"{package} is missing: run `npm ci` in {CONFORMANCE}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    SIGNALS.install()
    console = Console(width=max(Console().width, 180))
    problem = check_prerequisites()
    if problem:
        console.print(f"[red]error:[/red] {problem}")
        return 1
    sizes = QUICK if args.quick else FULL
    workroot = Path(tempfile.mkdtemp(prefix="streams-bench-"))
    run_id = f"{int(time.time())}-{os.getpid()}"
    results: dict[tuple[str, str], Result] = {}
    errors: list[str] = []
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    load = os.getloadavg()
    console.print(
        f"{'quick' if args.quick else 'full'} run, servers={','.join(args.servers)} "
        f"cores={os.cpu_count()} node={node_version.strip()} python={sys.version.split()[0]} "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} work={workroot}"
    )
    try:
        with contextlib.ExitStack() as stack:
            servers: list[Server] = []
            for name in args.servers:
                workdir = workroot / name
                workdir.mkdir(parents=True)
                server = stack.enter_context(RUNNERS[name](workdir))
                server.start = {role: sample(pid) for role, pid in server.pids.items()}
                console.print(f"  {SERVER_TITLES[name]}: {server.base} pids {server.pids}")
                servers.append(server)
            failed: set[str] = set()
            for figure in FIGURES:
                for server in servers:
                    if server.name in failed:
                        continue
                    try:
                        result = run_phase(
                            figure,
                            server,
                            run_id=run_id,
                            sizes=sizes,
                            workdir=workroot / server.name,
                        )
                    except BenchmarkError as exc:
                        # Later phases on this server may depend on this one: skip them.
                        errors.append(str(exc))
                        failed.add(server.name)
                        console.print(f"[red]error:[/red] {exc}")
                        continue
                    results[(figure.key, server.name)] = result
                    d = result.data
                    cpu = " ".join(f"{role} {s:.2f}" for role, s in result.server_cpu_s.items())
                    extra = (
                        f"p50 {d['p50_ms']:.2f} ms p99 {d['p99_ms']:.2f} ms"
                        if figure.phase == "sse"
                        else f"{result.msgs_per_s:>10,.0f} msg/s"
                    )
                    console.print(
                        f"  {figure.key:10} {SERVER_TITLES[server.name]:16} {extra}  "
                        f"{d['seconds']:6.2f} s  server CPU s: {cpu}  client CPU "
                        f"{d['client_cpu_s']:.2f} s"
                    )
            load = os.getloadavg()
            console.print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
            report(console, results, servers, sizes, errors)
    except Exception as exc:
        errors.append(repr(exc))
        console.print(traceback.format_exc(), markup=False, highlight=False)
    finally:
        if args.keep:
            console.print(f"work directory kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

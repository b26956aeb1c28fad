"""What the benchmarks share: /proc samples of a process, and signals that never orphan a child.

Imported by the benchmark scripts in this folder (run as scripts, so this folder is on sys.path).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcSample:
    cpu_s: float
    rss_mb: float
    hwm_mb: float


def sample(pid: int) -> ProcSample:
    """CPU seconds (all threads) and memory of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name in field 2 may contain spaces; fields after it are plain numbers.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    memory: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return ProcSample(
        cpu_s=ticks / os.sysconf("SC_CLK_TCK"), rss_mb=memory["VmRSS"], hwm_mb=memory["VmHWM"]
    )


class DeferredSignals:
    """SIGINT and SIGTERM as exceptions, held back while a child process starts or stops.

    An exception raised inside ``Popen()`` or ``wait()`` would leave a child without an owner
    (nobody holds its pid any more to stop it), so ``deferred()`` records a signal and raises it
    on leaving, once the child is assigned (and the caller's ``finally`` can stop it) or reaped.
    Inside an event loop, ``run_async`` turns them into cancellation instead.
    """

    def __init__(self) -> None:
        self._deferring = False
        self._pending: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._deferring:
            self._pending = signum
            return
        self.raise_for(signum)

    @staticmethod
    def raise_for(signum: int) -> NoReturn:
        # Both unwind through the finally blocks that stop brokers and kcat.
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._pending is not None:
                signum, self._pending = self._pending, None
                self.raise_for(signum)

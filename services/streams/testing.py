"""Test helpers users can reuse: the streams gateway as a restartable OS process.

``StreamsProcess`` runs ``netscript streams serve`` as a child process on a fixed port, so
crash tests can ``kill()`` it (SIGKILL: no flush, no close) and ``start()`` it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from services._net import wait_until_listening
from services.log.testing import free_port
from services.streams._errors import StreamsError


class StreamsProcess:
    """``netscript streams serve`` in a child process on ``port``, on the log at ``bootstrap``."""

    def __init__(self, bootstrap: str, *, log_file: Path, port: int | None = None,
                 long_poll_timeout: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.port = port or free_port()
        self._log_file = log_file
        self._long_poll = long_poll_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StreamsProcess:
        """Start the process and wait until it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            raise StreamsError("the streams process is already running")
        with open(self._log_file, "ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "topology.cli", "streams", "serve", "--port",
                 str(self.port), "--long-poll-timeout", str(self._long_poll)],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                     "PYTHONUNBUFFERED": "1"},
            )
        if not wait_until_listening("127.0.0.1", self.port, timeout=30):
            self.kill()
            raise StreamsError(f"the streams server did not start; see {self._log_file}:\n"
                               + self._log_file.read_text()[-2000:])
        return self

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def __enter__(self) -> StreamsProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()

"""Test helpers for code that needs a real broker: reuse them in your own test suites.

``Broker.serve(port=0, data_dir=...)`` runs a broker inside the current event loop;
``BrokerProcess`` runs one as a separate OS process, which is what crash tests need: ``kill()``
sends SIGKILL, so nothing gets a chance to flush or close.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from services._net import wait_until_listening
from services.log._errors import LogError

# Runs the rest of argv with RLIMIT_NOFILE (soft and hard) set to argv[1], as `ulimit -n` would:
# an exec, not a preexec_fn, which is unsafe when the parent runs threads (librdkafka's).
_WITH_NOFILE = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, *, timeout: float = 30.0) -> None:
    """Poll until ``host:port`` accepts connections; raise ``LogError`` after ``timeout``."""
    if not wait_until_listening(host, port, timeout=timeout):
        raise LogError(f"nothing listens on {host}:{port} after {timeout}s")


class BrokerProcess:
    """``netscript log serve`` in a child process, restartable on the same port and data.

    Usable as a context manager; the process is killed on exit if still running.
    ``nofile_limit`` starts it with that many file descriptors at most (``ulimit -n``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        args: tuple[str, ...] = (),
        log_file: Path | None = None,
        nofile_limit: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self._args = args
        self._log_file = log_file or data_dir.parent / f"broker-{self.port}.log"
        self._nofile_limit = nofile_limit
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        """Where the process's output goes (appended to across restarts)."""
        return self._log_file

    @property
    def pid(self) -> int:
        if self._process is None:
            raise LogError("the broker process is not running")
        return self._process.pid

    def start(self) -> BrokerProcess:
        """Start the process and wait until it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            raise LogError("the broker process is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        limit = self._nofile_limit
        prefix = ["-c", _WITH_NOFILE, str(limit)] if limit is not None else []
        with open(self._log_file, "ab") as out:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    *prefix,
                    "-m",
                    "topology.cli",
                    "log",
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    *self._args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            wait_for_port(self.host, self.port)
        except LogError:
            self.kill()
            raise LogError(
                f"the broker did not start; its output is in {self._log_file}:\n"
                + self._log_file.read_text()[-2000:]
            ) from None
        return self

    def kill(self) -> None:
        """SIGKILL the process (a crash: no flush, no close) and reap it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the process and wait for a graceful exit; returns its exit code."""
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._process.returncode

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

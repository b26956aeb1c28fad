"""The ``netscript`` command line: ``up`` runs the graph, SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from services.log.testing import free_port, wait_for_port


def test_up_starts_the_graph_reports_it_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`netscript up` serves the log, streams gateway and registry on it; SIGTERM exits 0."""
    port = free_port()
    streams_port = free_port()
    registry_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "topology.cli",
            "up",
            "--log-port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--streams-port",
            str(streams_port),
            "--registry-port",
            str(registry_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port)
        from confluent_kafka.admin import AdminClient

        metadata = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=20)
        assert list(metadata.brokers) == [0]
        wait_for_port("127.0.0.1", streams_port)
        ready = httpx.get(f"http://127.0.0.1:{streams_port}/health/ready", timeout=10)
        assert ready.json()["checks"]["log"] == "ok"
        created = httpx.put(f"http://127.0.0.1:{streams_port}/v1/stream/up-check",
                            headers={"Content-Type": "text/plain"}, content=b"x", timeout=10)
        assert created.status_code == 201
        wait_for_port("127.0.0.1", registry_port)
        subjects = httpx.get(f"http://127.0.0.1:{registry_port}/subjects", timeout=10)
        assert subjects.json() == []
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}" in output
    assert (tmp_path / "data" / "log" / "meta").is_dir()


def test_log_serve_rejects_a_data_dir_in_use(tmp_path: Path) -> None:
    """A second broker on the same data directory fails with a message saying what to do."""
    from services.log.testing import BrokerProcess

    with BrokerProcess(tmp_path / "data"):
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "topology.cli",
                "log",
                "serve",
                "--port",
                str(free_port()),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert second.returncode != 0
    assert "in use by another broker" in second.stderr


def test_log_serve_reads_its_settings_from_the_environment(tmp_path: Path) -> None:
    """NETSCRIPT_LOG_PORT and NETSCRIPT_LOG_DATA_DIR configure `netscript log serve`."""
    import os

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "log", "serve"],
        env={
            **os.environ,
            "NETSCRIPT_LOG_PORT": str(port),
            "NETSCRIPT_LOG_DATA_DIR": str(tmp_path / "from-env"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
        assert (tmp_path / "from-env" / "meta").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0

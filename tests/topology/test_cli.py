"""The ``netscript`` command line: ``up`` runs the graph, SIGTERM stops it cleanly; ``graph``
and ``init``."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from services.log.testing import free_port, wait_for_port
from topology import build_graph, load_app_file

ROOT = Path(__file__).resolve().parents[2]


def test_up_starts_the_graph_reports_it_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`netscript up` makes every port healthy, wired as the graph says; SIGTERM cleans up."""
    port, streams_port, registry_port = free_port(), free_port(), free_port()
    sagas_port, runtime_port = free_port(), free_port()
    workers_port, dispatcher_port, pools_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "up", "--app", str(ROOT / "netscript.toml"),
         "--log-port", str(port), "--data-dir", str(tmp_path / "data"),
         "--streams-port", str(streams_port), "--registry-port", str(registry_port),
         "--port", f"sagas={sagas_port}", "--port", f"sagas-runtime={runtime_port}",
         "--port", f"workers={workers_port}", "--port", f"workers-dispatcher={dispatcher_port}",
         "--port", f"workers-pools={pools_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_port("127.0.0.1", port)
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        assert list(admin.list_topics(timeout=20).brokers) == [0]
        ready = wait_ready(f"http://127.0.0.1:{streams_port}/health/ready")
        assert ready["checks"]["log"] == "ok"
        created = httpx.put(f"http://127.0.0.1:{streams_port}/v1/stream/up-check",
                            headers={"Content-Type": "text/plain"}, content=b"x", timeout=10)
        assert created.status_code == 201
        wait_ready(f"http://127.0.0.1:{registry_port}/health/ready")
        # init ran before streams started: the declared topic and subject exist.
        assert "__netscript_streams" in admin.list_topics(timeout=20).topics
        subjects = httpx.get(f"http://127.0.0.1:{registry_port}/subjects", timeout=10)
        assert {"netscript.streams.ChangeEvent", "netscript.sagas.SagaMessage",
                "netscript.sagas.order.OrderPlaced"} <= set(subjects.json())
        sagas = wait_ready(f"http://127.0.0.1:{sagas_port}/health/ready")
        assert sagas["checks"]["views"] == "ok"
        registered = httpx.get(f"http://127.0.0.1:{sagas_port}/api/v1/sagas/sagas", timeout=10)
        assert {s["id"] for s in registered.json()} == {"order-saga", "user-settings-saga"}
        # The runtime answers once its instance table is recovered from the changelog.
        wait_ready(f"http://127.0.0.1:{runtime_port}/health/ready", timeout=60)
        # A request through the wired graph: sagas API → log → runtime → log → the API's
        # mirror → the streams service (found through services__streams__http__0).
        published = httpx.post(f"http://127.0.0.1:{sagas_port}/api/v1/sagas/publish", json={
            "type": "UserSettingsCreated", "payload": {"userId": "through-the-graph"}},
            timeout=10)
        assert published.status_code == 202, published.text
        assert_mirrored(f"http://127.0.0.1:{streams_port}/v1/stream/sagas/instances",
                        "through-the-graph")
        # The seed's thread across the plugin boundary: a workers job publishes
        # UserSettingsCreated through the sagas API (services__sagas__http__0), and the
        # user-settings-saga completes.
        wait_ready(f"http://127.0.0.1:{workers_port}/health/ready", timeout=60)
        wait_ready(f"http://127.0.0.1:{dispatcher_port}/health/ready", timeout=60)
        wait_ready(f"http://127.0.0.1:{pools_port}/health/ready", timeout=60)
        jobs = f"http://127.0.0.1:{workers_port}/api/v1/workers"
        triggered = httpx.post(f"{jobs}/jobs/create-user-settings/trigger",
                               json={"userId": "job-through-the-graph"}, timeout=10)
        assert triggered.status_code == 202, triggered.text
        execution = httpx.get(f"{jobs}/executions/{triggered.json()['execution_id']}",
                              params={"wait": 30, "until": "terminal"}, timeout=40).json()
        assert execution["status"] == "succeeded", execution
        assert execution["result"]["settingsCreated"] is True
        assert_mirrored(f"http://127.0.0.1:{streams_port}/v1/stream/sagas/instances",
                        "job-through-the-graph")
        # …and the execution is mirrored into the durable stream /workers/executions.
        assert_execution_mirrored(
            f"http://127.0.0.1:{streams_port}/v1/stream/workers/executions",
            triggered.json()["execution_id"])
        children = psutil.Process(process.pid).children(recursive=True)
        streams = next(c for c in children if "streams" in c.cmdline())
        graph = build_graph(load_app_file(ROOT / "netscript.toml"), ports={
            "log": port, "streams": streams_port, "registry": registry_port})
        expected = {k: v for k, v in graph.node("streams").env.items()
                    if not k.startswith("OTEL_EXPORTER")}
        assert expected.items() <= streams.environ().items()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}" in output
    assert re.search(r"^streams +│ ", output, re.MULTILINE)
    assert re.search(r"^registry +│ ", output, re.MULTILINE)
    assert re.search(r"^sagas-runtime +│ ", output, re.MULTILINE)
    assert (tmp_path / "data" / "log" / "meta").is_dir()
    assert_gone(children)


def test_up_restarts_a_crashed_child_and_starts_only_what_is_asked(tmp_path: Path) -> None:
    """--only registry starts the log and the registry; a registry killed with -9 comes back."""
    port, registry_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "up", "--app", str(ROOT / "netscript.toml"),
         "--only", "registry", "--port", f"log={port}", "--port", f"registry={registry_port}",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{registry_port}/health/ready")
        assert sorted(subcommands(process.pid)) == ["log", "registry"]
        registry = subcommands(process.pid)["registry"]
        registry.kill()
        registry.wait(timeout=10)
        wait_ready(f"http://127.0.0.1:{registry_port}/health/ready")
        assert subcommands(process.pid)["registry"].pid != registry.pid
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "registry exited (killed by SIGKILL)" in output
    assert "registry restarting in 0.5s" in output
    assert_gone(children)


def test_up_gives_up_a_child_that_keeps_crashing(tmp_path: Path) -> None:
    """A child failing past --max-restarts is reported, the graph stopped, the exit code 1."""
    app = tmp_path / "netscript.toml"
    app.write_text(textwrap.dedent("""
        [infrastructure.dashboard]
        enabled = false
        [background.crasher]
        command = ["python", "-c", "import os; print(os.environ['OTEL_SERVICE_NAME']); exit(3)"]
    """))
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "up", "--app", str(app), "--max-restarts", "1",
         "--log-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, output
    assert output.count("crasher │ crasher") == 2
    assert "crasher exited (exit code 3)" in output
    assert "crasher restarting in 0.5s (failure 1 of 2)" in output
    assert "crasher failed 2 times in a row (last: exit code 3)" in output
    assert (tmp_path / ".data" / "log" / "meta").is_dir()


def test_children_do_not_outlive_a_killed_up(tmp_path: Path) -> None:
    """Even `kill -9` of `netscript up` leaves no child behind (they die with their parent)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "up", "--app", str(ROOT / "netscript.toml"),
         "--only", "log", "--log-port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
        children = psutil.Process(process.pid).children(recursive=True)
        assert [c.cmdline()[3] for c in children] == ["log"]
    finally:
        process.kill()
        process.wait()
    assert_gone(children)


def test_up_fails_fast_when_a_port_is_taken(tmp_path: Path) -> None:
    """A port already in use stops `netscript up` at once with a message naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "topology.cli", "up", "--app", str(ROOT / "netscript.toml"),
             "--only", "log", "--log-port", str(port), "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"port {port} of log is in use" in result.stdout
    assert "--port log=PORT" in result.stdout


def test_graph_prints_the_table_and_mermaid() -> None:
    """`netscript graph` lists resources with their env; --mermaid draws the references."""
    table = subprocess.run([sys.executable, "-m", "topology.cli", "graph", "--target", "compose"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert "KAFKA_BOOTSTRAP_SERVERS=redpanda:9092" in table.stdout
    assert "served by redpanda" in table.stdout
    chart = subprocess.run([sys.executable, "-m", "topology.cli", "graph", "--mermaid"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert chart.stdout.startswith("flowchart LR")
    assert "streams ==>|init| init" in chart.stdout
    assert "init -->|plugin_references| registry" in chart.stdout


def test_init_creates_declared_topics_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`netscript init` creates the declared topics and leaves existing ones alone."""
    app = tmp_path / "netscript.toml"
    app.write_text("[plugins.streams]\n")
    command = [sys.executable, "-m", "topology.cli", "init", "--app", str(app),
               "--bootstrap-servers", kafka_bootstrap]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "topic __netscript_streams: created" in first.stdout or (
        "topic __netscript_streams: exists" in first.stdout)
    assert "topic __netscript_streams: exists" in second.stdout
    assert "schemas not registered (no SCHEMA_REGISTRY_URL)" in second.stdout


def assert_mirrored(url: str, correlation_key: str, *, timeout: float = 60.0) -> None:
    """Poll the /sagas/instances stream until the instance shows as completed."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, params={"offset": "-1"}, timeout=5)
        if response.status_code == 200:
            latest = {e["key"]: e["value"] for e in response.json()}
            if any(v["correlation_key"] == correlation_key and v["status"] == "completed"
                   for v in latest.values()):
                return
        assert time.monotonic() < deadline, f"{correlation_key} not completed in {url}"
        time.sleep(0.1)


def assert_execution_mirrored(url: str, execution_id: str, *, timeout: float = 60.0) -> None:
    """Poll the /workers/executions stream until the execution shows as succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, params={"offset": "-1"}, timeout=5)
        if response.status_code == 200:
            latest = {e["key"]: e["value"] for e in response.json()}
            if latest.get(execution_id, {}).get("status") == "succeeded":
                assert latest[execution_id]["job_id"] == "create-user-settings"
                return
        assert time.monotonic() < deadline, f"{execution_id} not succeeded in {url}"
        time.sleep(0.1)


def wait_ready(url: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Poll ``url`` until it answers 200; its JSON body."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready after {timeout}s"
        time.sleep(0.05)


def subcommands(pid: int) -> dict[str, psutil.Process]:
    """The live `netscript` children of ``pid`` by subcommand (``log``, ``registry``, …)."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found[child.cmdline()[3]] = child
        except (psutil.NoSuchProcess, psutil.ZombieProcess, IndexError):
            continue
    return found


def assert_gone(processes: list[psutil.Process]) -> None:
    """None of ``processes`` is alive any more."""
    _gone, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]


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

"""The official Durable Streams conformance suite (npm), against `netscript streams serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.log.testing import free_port, wait_for_port

HERE = Path(__file__).parent
LONG_POLL_SECONDS = 3


@pytest.fixture
def streams_process(kafka_bootstrap: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "streams.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "streams", "serve", "--port", str(port),
         "--long-poll-timeout", str(LONG_POLL_SECONDS)],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_conformance_test_passes(
    streams_process: str, tmp_path: Path, node_dir: Path
) -> None:
    """All tests of @durable-streams/server-conformance-tests pass, subscriptions included."""
    results = tmp_path / "results.json"
    run = subprocess.run(
        ["bash", str(HERE / "run_conformance.sh"), streams_process, str(results)],
        env={**os.environ, "DS_LONG_POLL_TIMEOUT_MS": str(LONG_POLL_SECONDS * 1000)},
        capture_output=True, text=True, timeout=540,
    )
    assert results.exists(), run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads(results.read_text())
    failed = [
        " > ".join([*test["ancestorTitles"][1:], test["title"]])
        for suite in report["testResults"] for test in suite["assertionResults"]
        if test["status"] != "passed"
    ]
    assert report["numTotalTests"] >= 338
    assert failed == [], "\n".join(failed)

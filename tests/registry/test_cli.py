"""``netscript registry serve``, ``publish`` and ``tail`` as processes, on the test's log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from services.log import Broker
from services.log.testing import free_port
from services.registry import RegistryClient
from tests.log._poll import eventually
from tests.registry.conftest import record

ORDER = record(
    "Order", {"name": "id", "type": "long"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "note", "type": ["null", "string"], "default": None},
)


async def netscript(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI to completion; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "topology.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(url + "/health/ready")).status_code == 200
    except httpx.TransportError:
        return False


async def test_serve_publish_and_tail(broker: Broker, topic: str) -> None:
    """serve runs the registry; publish encodes or names the bad field; tail decodes."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    env.pop("SCHEMA_REGISTRY_URL", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "topology.cli", "registry", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await eventually(lambda: answers(url), timeout=30, what="registry serve to answer")
        async with RegistryClient(url) as registry:
            await registry.register(f"{topic}-value", ORDER)

        code, out, err = await netscript(
            "publish", topic, "--key", "o1", "--value", '{"id": 1, "status": "NEW"}',
            "--registry", url, env=env)
        assert code == 0, err
        assert re.search(r"partition=0 offset=0\b", out), out
        assert "schema id 1" in out

        code, out, err = await netscript(
            "publish", topic, "--value", '{"id": 2, "status": "SHIPPED"}', "--registry", url,
            env=env)
        assert code == 1
        assert "field 'status'" in err
        assert "one of the symbols NEW, PAID" in err
        code, _out, err = await netscript("publish", topic, "--value", "{nope", env=env)
        assert (code, "not JSON" in err) == (2, True)

        plain = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await plain.start()
        try:
            await plain.send_and_wait(topic, b'{"plain": true}', key=b"p")
        finally:
            await plain.stop()

        code, out, err = await netscript(
            "tail", topic, "--from-beginning", "--max", "2", "--registry", url, env=env)
        assert code == 0, err
        lines: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
        assert [(line["partition"], line["offset"], line["key"]) for line in lines] == [
            (0, 0, "o1"), (0, 1, "p")]
        assert lines[0]["value"] == {"id": 1, "status": "NEW", "note": None}
        assert lines[0]["schema_id"] == 1
        assert lines[1]["value"] == {"plain": True}

        code, out, err = await netscript(
            "tail", topic, "--from-beginning", "--exit-at-end", "--raw", env=env)
        assert code == 0, err
        raw = [json.loads(line) for line in out.splitlines()]
        assert len(raw) == 2
        assert raw[0]["value"].startswith("\x00\x00\x00\x00\x01")
        assert raw[1]["value"] == '{"plain": true}'
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(server.communicate(), timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why.
    assert server.returncode in (0, -signal.SIGTERM), output.decode()
    assert f"schema registry on {url}" in output.decode()

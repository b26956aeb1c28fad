"""Crashes: `kill -9` of the streams server or of the log loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.log.testing import BrokerProcess
from services.streams.testing import StreamsProcess
from tests.streams._sse import events

TOTAL = 60
PATH = "/crash/events"


class Failures:
    """Attempts the writer saw fail, shared with the thread that crashes and restarts."""

    def __init__(self) -> None:
        self.count = 0

    def wait_for_one(self) -> None:
        deadline = time.monotonic() + 30
        while self.count == 0:
            assert time.monotonic() < deadline, "the writer never noticed the crash"
            time.sleep(0.01)


async def write_all(base: str, failures: Failures, halfway: asyncio.Event) -> None:
    """Append TOTAL messages with producer headers, retrying each until acknowledged."""
    async with httpx.AsyncClient(base_url=base + "/v1/stream", timeout=5) as http:
        for n in range(TOTAL):
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = await http.post(PATH, json={"n": n}, headers={
                        "Content-Type": "application/json", "Producer-Id": "writer",
                        "Producer-Epoch": "0", "Producer-Seq": str(n)})
                    if response.status_code in (200, 204):
                        break
                except httpx.HTTPError:
                    pass
                failures.count += 1
                assert time.monotonic() < deadline, f"append {n} never acknowledged"
                await asyncio.sleep(0.05)
            if n == TOTAL // 2:
                halfway.set()


async def read_all(base: str) -> tuple[list[int], int]:
    """Follow the stream over SSE from the start, reconnecting from the last control offset.

    Returns the messages received and how many connections it took.
    """
    received: list[int] = []
    connections = 0
    offset = "-1"
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=20)) as http:
        while len(received) < TOTAL:
            assert time.monotonic() < deadline, f"reader stuck at {len(received)} messages"
            connections += 1
            try:
                async with http.stream("GET", f"{base}/v1/stream{PATH}",
                                       params={"offset": offset, "live": "sse"}) as response:
                    if response.status_code != 200:
                        await asyncio.sleep(0.05)
                        continue
                    pending: list[int] = []
                    async for event in events(response):
                        if event.event == "data":
                            pending = [m["n"] for m in event.json()]
                        elif event.event == "control":
                            # Data counts only once its offset arrived: a reconnect resumes
                            # from the last control event, so nothing is seen twice.
                            received.extend(pending)
                            pending = []
                            offset = json.loads(event.data)["streamNextOffset"]
                            if len(received) >= TOTAL:
                                break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    return received, connections


async def run_with_crash(
    base: str, kill: Callable[[], None], restart: Callable[[], None]
) -> tuple[list[int], int]:
    """Write and read concurrently; at half way kill, wait until the writer saw it, restart."""
    async with httpx.AsyncClient() as http:
        created = await http.put(f"{base}/v1/stream{PATH}",
                                 headers={"Content-Type": "application/json"})
        assert created.status_code in (200, 201)
    failures, halfway = Failures(), asyncio.Event()

    def crash() -> None:
        kill()
        failures.wait_for_one()
        restart()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(write_all(base, failures, halfway))
        reader = tasks.create_task(read_all(base))
        await halfway.wait()
        await asyncio.to_thread(crash)
    return reader.result()


@pytest.mark.slow
async def test_streams_server_kill_9_mid_session(tmp_path: Path) -> None:
    """After the server is SIGKILLed and restarted, readers and writers resume exactly once."""
    with BrokerProcess(tmp_path / "log") as broker, StreamsProcess(
        broker.bootstrap_servers, log_file=tmp_path / "streams.log"
    ) as server:

        received, connections = await run_with_crash(server.url, server.kill, server.start)
        async with httpx.AsyncClient(base_url=server.url + "/v1/stream") as http:
            stored = (await http.get(PATH)).json()
            # A retry of an acknowledged append after the restart is still recognised.
            retry = await http.post(PATH, json={"n": TOTAL - 1}, headers={
                "Content-Type": "application/json", "Producer-Id": "writer",
                "Producer-Epoch": "0", "Producer-Seq": str(TOTAL - 1)})
    assert connections > 1, "the reader was not cut off by the crash"
    assert received == list(range(TOTAL))
    assert [m["n"] for m in stored] == list(range(TOTAL))
    assert retry.status_code == 204


@pytest.mark.slow
async def test_log_kill_9_mid_session(tmp_path: Path) -> None:
    """After the log is SIGKILLed and restarted, readers and writers resume exactly once."""
    with BrokerProcess(tmp_path / "log") as broker, StreamsProcess(
        broker.bootstrap_servers, log_file=tmp_path / "streams.log"
    ) as server:

        received, _connections = await run_with_crash(server.url, broker.kill, broker.start)
        async with httpx.AsyncClient(base_url=server.url + "/v1/stream") as http:
            stored = (await http.get(PATH)).json()
    assert received == list(range(TOTAL))
    assert [m["n"] for m in stored] == list(range(TOTAL))

"""Independent clients read what our producer wrote and agree with our materialized view."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from durable_streams import AsyncDurableStream
from pydantic import BaseModel

from services.kernel.testing import RunningServer
from services.streams import create_durable_stream, define_stream_schema


class Order(BaseModel):
    id: str
    total: int


SCHEMA = define_stream_schema({"order": {"schema": Order, "type": "order",
                                         "primary_key": "id"}})


async def write_orders(base: str, path: str) -> None:
    producer = create_durable_stream(stream_path=path, schema=SCHEMA, producer_id="interop",
                                     base_url=base)
    for n in range(20):
        producer.upsert("order", Order(id=f"o{n % 7}", total=n))
    producer.delete("order", "o3")
    await producer.close()


async def our_view(base: str, path: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base) as http:
        snapshot = (await http.get(f"/v1/views{path}")).json()
    view: dict[str, dict[str, Any]] = {}
    for entity in snapshot["entities"]:
        view.setdefault(entity["type"], {})[entity["key"]] = entity["value"]
    return view


async def test_typescript_client_and_state_materializer_agree(
    streams_server: RunningServer, stream_path: str, node_dir: Path
) -> None:
    """@durable-streams/client + MaterializedState (catch-up, long-poll, SSE) match our view."""
    await write_orders(streams_server.url, stream_path)
    expected = await our_view(streams_server.url, stream_path)
    process = await asyncio.create_subprocess_exec(
        "node", "read-state.mjs", f"{streams_server.url}/v1/stream{stream_path}",
        cwd=node_dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    results = json.loads(stdout)
    latest = {f"o{n % 7}": {"id": f"o{n % 7}", "total": n} for n in range(20)}
    del latest["o3"]
    assert expected == {"order": latest}
    for mode in ("catch-up", "long-poll", "sse"):
        assert results[mode] == expected, mode


async def test_pypi_client_reads_what_we_wrote(
    streams_server: RunningServer, stream_path: str
) -> None:
    """The PyPI `durable-streams` client reads the same change events in the same order."""
    await write_orders(streams_server.url, stream_path)
    handle = AsyncDurableStream(f"{streams_server.url}/v1/stream{stream_path}")
    try:
        async with handle.stream(live=False) as response:
            items = [item async for item in response.iter_json()]
    finally:
        await handle.aclose()
    async with httpx.AsyncClient() as http:
        ours = (await http.get(f"{streams_server.url}/v1/stream{stream_path}")).json()
    assert items == ours
    assert len(items) == 21
    assert items[-1]["headers"]["operation"] == "delete"

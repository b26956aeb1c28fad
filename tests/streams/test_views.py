"""Materialized views: snapshots, read-your-writes, live SSE with resume, the retention horizon."""

from __future__ import annotations

import json
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

from services.kernel import Settings
from services.kernel.testing import RunningServer, serve_app
from services.streams.api import StreamsConfig, create_streams_app
from tests.streams._sse import events, take


def change(kind: str, key: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "key": key,
                             "headers": {"operation": "delete" if delete else "upsert"}}
    if not delete:
        event["value"] = value
    return event


async def append(client: httpx.AsyncClient, path: str, *events_: dict[str, Any]) -> str:
    response = await client.post(path, json=list(events_),
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 204, response.text
    return response.headers["stream-next-offset"]


async def create(client: httpx.AsyncClient, path: str) -> None:
    response = await client.put(path, headers={"Content-Type": "application/json"})
    assert response.status_code == 201


async def test_snapshot_holds_the_latest_value_per_key(
    streams: httpx.AsyncClient, streams_server: RunningServer, stream_path: str
) -> None:
    """The snapshot lists each live entity once, with its latest value; deletes remove it."""
    await create(streams, stream_path)
    await append(streams, stream_path, change("user", "u1", {"n": 1}),
                 change("user", "u2", {"n": 1}))
    offset = await append(streams, stream_path, change("user", "u1", {"n": 2}),
                          change("user", "u2", delete=True), change("org", "o1", {"n": 9}))
    async with httpx.AsyncClient(base_url=streams_server.url) as http:
        snapshot = (await http.get(f"/v1/views{stream_path}")).json()
        users = (await http.get(f"/v1/views{stream_path}", params={"type": "user"})).json()
        one = await http.get(f"/v1/views{stream_path}", params={"type": "org", "key": "o1"})
        missing = await http.get(f"/v1/views{stream_path}", params={"type": "user", "key": "u2"})
    assert snapshot["offset"] == offset
    assert [(e["type"], e["key"], e["value"]) for e in snapshot["entities"]] == [
        ("org", "o1", {"n": 9}), ("user", "u1", {"n": 2})]
    assert [e["key"] for e in users["entities"]] == ["u1"]
    assert one.json()["entities"][0]["value"] == {"n": 9}
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_read_your_writes_with_min_offset(
    streams: httpx.AsyncClient, streams_server: RunningServer, stream_path: str
) -> None:
    """A read with the offset a write returned sees that write; a future offset times out."""
    await create(streams, stream_path)
    async with httpx.AsyncClient(base_url=streams_server.url) as http:
        for n in range(5):
            offset = await append(streams, stream_path, change("c", "k", {"n": n}))
            seen = await http.get(f"/v1/views{stream_path}", params={"min_offset": offset})
            assert seen.json()["entities"][0]["value"] == {"n": n}
        future = "0000000000000000_0000000000009999"
        late = await http.get(f"/v1/views{stream_path}",
                              params={"min_offset": future, "timeout": 0.3})
        bad = await http.get(f"/v1/views{stream_path}", params={"min_offset": "x"})
    assert late.status_code == 504
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "query.min_offset"


async def test_live_view_streams_changes_and_resumes(
    streams: httpx.AsyncClient, streams_server: RunningServer, stream_path: str
) -> None:
    """SSE sends a snapshot then changes; resuming from an event id sends only what followed."""
    await create(streams, stream_path)
    await append(streams, stream_path, change("c", "a", 1))
    url = f"{streams_server.url}/v1/views{stream_path}"
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("GET", url, params={"live": "sse"}) as response:
            feed = events(response)
            (snapshot,) = await take(feed, 1)
            assert snapshot.event == "snapshot"
            assert [e["key"] for e in snapshot.json()["entities"]] == ["a"]
            await append(streams, stream_path, change("c", "b", 2))
            (first,) = await take(feed, 1)
        assert first.event == "changes"
        assert [e["key"] for e in first.json()] == ["b"]
        await append(streams, stream_path, change("c", "c", 3))
        async with http.stream("GET", url, params={"live": "sse"},
                               headers={"Last-Event-ID": first.id or ""}) as response:
            (resumed,) = await take(events(response), 1)
    assert resumed.event == "changes"
    assert [e["key"] for e in resumed.json()] == ["c"]


async def test_resuming_past_the_retention_horizon_resets(
    streams: httpx.AsyncClient, streams_server: RunningServer, stream_path: str,
    kafka_bootstrap: str,
) -> None:
    """A client behind what retention kept gets `reset` and a snapshot without deleted keys."""
    await create(streams, stream_path)
    early = await append(streams, stream_path, change("c", "gone", 1))
    await append(streams, stream_path, change("c", "kept", 2))
    await append(streams, stream_path, change("c", "gone", delete=True))
    async with httpx.AsyncClient(base_url=streams_server.url, timeout=30) as http:
        await http.get(f"/v1/views{stream_path}")  # the view has seen everything
        topic = await _topic_of(kafka_bootstrap, stream_path)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=2)})
        finally:
            await admin.close()
        gone = await streams.get(stream_path, params={"offset": early})
        assert gone.status_code == 410
        async with http.stream("GET", f"/v1/views{stream_path}", params={"live": "sse"},
                               headers={"Last-Event-ID": early}) as response:
            reset, snapshot = await take(events(response), 2)
    assert reset.event == "reset"
    assert snapshot.event == "snapshot"
    assert [e["key"] for e in snapshot.json()["entities"]] == ["kept"]


async def test_views_survive_a_restart_of_the_server(
    streams: httpx.AsyncClient, streams_server: RunningServer, stream_path: str,
    kafka_bootstrap: str,
) -> None:
    """A new server process serves the same snapshot from the view's changelog topic."""
    await create(streams, stream_path)
    offset = await append(streams, stream_path, change("c", "x", {"v": 1}), change("c", "y", 2))
    async with httpx.AsyncClient(base_url=streams_server.url) as http:
        before = (await http.get(f"/v1/views{stream_path}")).json()
    settings = Settings.from_env("streams-2", {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    app = create_streams_app(settings, StreamsConfig(long_poll_timeout=1.0))
    async with serve_app(app) as second, httpx.AsyncClient(base_url=second.url) as http:
        after = (await http.get(f"/v1/views{stream_path}")).json()
    assert after == before
    assert after["offset"] == offset


async def _topic_of(bootstrap: str, path: str) -> str:
    """The topic the catalog maps ``path`` to (read from the catalog topic itself)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer("__netscript_streams", bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        found = None
        batches = await consumer.getmany(timeout_ms=2000)
        while batches:
            for records in batches.values():
                for record in records:
                    if record.key == path.encode() and record.value:
                        found = json.loads(record.value)["topic"]
            batches = await consumer.getmany(timeout_ms=500)
        assert found is not None
        return str(found)
    finally:
        await consumer.stop()

"""The producer library: typed change events written exactly once, read back by `subscribe`."""

from __future__ import annotations

import json
import logging
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel

from services.kernel.testing import RunningServer
from services.streams import (
    LatestValues,
    StreamSchemaError,
    StreamsNotConfiguredError,
    StreamWriteError,
    build_stream_url,
    create_durable_stream,
    define_stream_schema,
    get_streams_auth,
    get_streams_url,
    inspect_stream_topic,
    subscribe,
)


class Execution(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed"]


SCHEMA = define_stream_schema({
    "execution": {"schema": Execution, "type": "execution", "primary_key": "id"},
    "worker": {
        "schema": {"type": "record", "name": "Worker",
                   "fields": [{"name": "name", "type": "string"},
                              {"name": "slots", "type": "int"}]},
        "type": "worker", "primary_key": "name",
    },
})


async def read_all(base: str, path: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    async for chunk in subscribe(path, base_url=base, live=False):
        events.extend(chunk.messages)
    return events


async def test_upserts_and_deletes_arrive_as_change_events(
    streams_server: RunningServer, stream_path: str
) -> None:
    """Enqueued upserts/deletes are stored in order as State-Protocol change events."""
    producer = create_durable_stream(stream_path=stream_path, schema=SCHEMA,
                                     producer_id="workers", base_url=streams_server.url)
    producer.upsert("execution", {"id": "e1", "status": "queued"})
    producer.upsert("execution", Execution(id="e1", status="running"))
    producer.upsert("worker", {"name": "w1", "slots": 4})
    producer.delete("execution", "e0")
    await producer.close()
    events = await read_all(streams_server.url, stream_path)
    assert [(e["type"], e["key"], e["headers"]["operation"]) for e in events] == [  # type: ignore[index]
        ("execution", "e1", "upsert"), ("execution", "e1", "upsert"),
        ("worker", "w1", "upsert"), ("execution", "e0", "delete"),
    ]
    view = LatestValues()
    for event in events:
        view.apply(event)
    assert view.of_type("execution") == {"e1": {"id": "e1", "status": "running"}}
    assert view.of_type("worker") == {"w1": {"name": "w1", "slots": 4}}


async def test_a_restarted_producer_claims_the_next_epoch(
    streams_server: RunningServer, stream_path: str
) -> None:
    """A new producer with the same id writes after the old one, and nothing is duplicated."""
    for status in ("queued", "running"):
        producer = create_durable_stream(stream_path=stream_path, schema=SCHEMA,
                                         producer_id="same-id", base_url=streams_server.url)
        producer.upsert("execution", {"id": "e1", "status": status})
        await producer.close()
    events = await read_all(streams_server.url, stream_path)
    assert [e["value"]["status"] for e in events] == ["queued", "running"]  # type: ignore[index]


async def test_retrying_a_batch_stores_it_once(
    streams: httpx.AsyncClient, stream_path: str
) -> None:
    """The producer headers make a retried POST (same epoch and seq) a no-op."""
    await streams.put(stream_path, headers={"Content-Type": "application/json"})
    headers = {"Content-Type": "application/json", "Producer-Id": "p",
               "Producer-Epoch": "0", "Producer-Seq": "0"}
    first = await streams.post(stream_path, content=b'[{"n":1}]', headers=headers)
    retry = await streams.post(stream_path, content=b'[{"n":1}]', headers=headers)
    assert (first.status_code, retry.status_code) == (200, 204)
    assert (await streams.get(stream_path)).json() == [{"n": 1}]


async def test_invalid_values_raise_and_missing_keys_are_skipped(
    streams_server: RunningServer, stream_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that breaks its schema raises naming the field; a keyless one is skipped."""
    producer = create_durable_stream(stream_path=stream_path, schema=SCHEMA,
                                     producer_id="p", base_url=streams_server.url)
    with pytest.raises(StreamSchemaError, match="status"):
        producer.upsert("execution", {"id": "e1", "status": "exploded"})
    with pytest.raises(StreamSchemaError, match="slots"):
        producer.upsert("worker", {"name": "w1", "slots": "many"})
    with caplog.at_level(logging.WARNING):
        producer.upsert("worker", {"name": "", "slots": 1})
        producer.upsert("nope", {"id": "x"})
        producer.delete("execution", "")
    assert len(caplog.records) == 3
    await producer.close()
    assert await read_all(streams_server.url, stream_path) == []


async def test_flush_raises_the_connect_error() -> None:
    """A producer that never reached the server says so when flushed."""
    producer = create_durable_stream(stream_path="/nowhere", schema=SCHEMA, producer_id="p",
                                     base_url="http://127.0.0.1:1")
    producer.upsert("execution", {"id": "e1", "status": "queued"})
    with pytest.raises(StreamWriteError, match="cannot reach"):
        await producer.flush()
    with pytest.raises(StreamWriteError):
        await producer.close()
    assert producer.closed


async def test_one_producer_per_path_until_closed(streams_server: RunningServer) -> None:
    """create_durable_stream returns the live producer of a path, and a new one after close."""
    first = create_durable_stream(stream_path="/single", schema=SCHEMA, producer_id="p",
                                  base_url=streams_server.url)
    assert create_durable_stream(stream_path="single", schema=SCHEMA, producer_id="p",
                                 base_url=streams_server.url) is first
    await first.close()
    second = create_durable_stream(stream_path="/single", schema=SCHEMA, producer_id="p",
                                   base_url=streams_server.url)
    assert second is not first
    await second.close()


def test_url_and_auth_come_from_the_environment() -> None:
    """DURABLE_STREAMS_URL wins over the topology's reference; the secret becomes a header."""
    env = {"DURABLE_STREAMS_URL": "http://a:4437/", "services__streams__http__0": "http://b"}
    assert get_streams_url(env) == "http://a:4437"
    assert get_streams_url({"services__streams__http__0": "http://b:1"}) == "http://b:1"
    with pytest.raises(StreamsNotConfiguredError, match="DURABLE_STREAMS_URL"):
        get_streams_url({})
    assert get_streams_auth({"DURABLE_STREAMS_SECRET": "s"}) == {"Authorization": "Bearer s"}
    assert get_streams_auth({}) == {}
    assert build_stream_url("/w/x", "http://h:1/") == "http://h:1/v1/stream/w/x"
    assert build_stream_url("w/x", "http://h:1/v1/stream") == "http://h:1/v1/stream/w/x"


def test_inspect_stream_topic_is_json_stable() -> None:
    """The diagnostic report names every collection and survives a JSON round trip."""
    report = inspect_stream_topic(schema=SCHEMA, stream_path="/w", producer_id="p")
    assert report["details"]["collections"]["execution"] == {
        "type": "execution", "primary_key": "id", "schema": "Execution"}
    assert json.loads(json.dumps(report)) == report


def test_schema_definition_errors_are_clear() -> None:
    """A collection without a primary key or with a broken Avro schema fails at definition."""
    with pytest.raises(ValueError, match="primary_key"):
        define_stream_schema({"x": {"schema": Execution, "type": "x"}})
    with pytest.raises(ValueError, match="invalid Avro schema"):
        define_stream_schema({"x": {"schema": {"type": "record"}, "type": "x",
                                    "primary_key": "id"}})

"""The sagas API on :8092 against the real runtime: publish, read-your-writes, SSE, errors,
concurrency receipts, and a durable timer that survives kill -9."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.kernel import Settings, ensure_topics
from services.kernel.testing import serve_app
from services.log.testing import BrokerProcess
from services.sagas._engine import SagaEngine
from services.sagas._topics import topic_configs
from services.sagas._views import KvSagaStore, TransitionFeed
from services.sagas.api import create_sagas_app
from tests.log._poll import eventually
from tests.sagas._support import RuntimeProcess
from tests.sagas.sagas_for_tests import ALL, SPEC

pytestmark = pytest.mark.slow
PUBLISH = "/api/v1/sagas/publish"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[str]:
    """A log of this test's own (the saga topics have fixed names)."""
    with BrokerProcess(tmp_path / "log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap_servers, topic_configs(2)))
        yield broker.bootstrap_servers


@pytest.fixture
def runtime(log: str, tmp_path: Path) -> Iterator[RuntimeProcess]:
    """``netscript sagas run`` (kv) over the test sagas."""
    with RuntimeProcess(log, tmp_path / "runtime", sagas=SPEC) as process:
        yield process


@pytest.fixture
async def api(log: str) -> AsyncIterator[httpx.AsyncClient]:
    """The :8092 app on a free port, over the kv store."""
    settings = Settings(service_name="sagas-api", kafka_bootstrap_servers=log)
    feed = TransitionFeed(log)
    app = create_sagas_app(settings, SagaEngine(ALL), KvSagaStore(log, feed), feed=feed,
                           partitions=2)
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url,
                                                           timeout=30) as client:
        yield client


async def publish(api: httpx.AsyncClient, type_: str, payload: dict[str, Any],
                  **extra: Any) -> dict[str, Any]:
    response = await api.post(PUBLISH, json={"type": type_, "payload": payload, **extra})
    assert response.status_code == 202, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


async def test_order_saga_through_http_happy_path_and_compensation(
        api: httpx.AsyncClient, runtime: RuntimeProcess) -> None:
    """Publish the order saga's messages over HTTP; read-your-writes shows the completed and
    the compensated (refunded, failed) instance with their histories."""
    await publish(api, "OrderPlaced", {"orderId": "A"})
    await publish(api, "PaymentCaptured", {"orderId": "A", "paymentId": "pA"})
    receipt = await publish(api, "OrderFulfilled", {"orderId": "A"})
    assert receipt["published"] is True
    assert receipt["deliveries"][0]["saga_id"] == "order-saga"
    assert receipt["deliveries"][0]["correlation_key"] == "A"

    found = await api.get("/api/v1/sagas/instances/order-saga/A",
                          params={"after": receipt["position"]})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["status"] == "completed"
    assert body["result"] == {"orderId": "A", "paymentId": "pA"}
    assert [h["event"] for h in body["history"]] == [
        "saga:started", "saga:state_changed", "saga:completed"]

    await publish(api, "OrderPlaced", {"orderId": "B"})
    await publish(api, "PaymentCaptured", {"orderId": "B", "paymentId": "pB"})
    receipt = await publish(api, "FulfillmentFailed", {"orderId": "B", "reason": "lost"})
    body = (await api.get("/api/v1/sagas/instances/order-saga/B",
                          params={"after": receipt["position"]})).json()
    assert body["status"] == "failed"
    assert body["state"]["status"] == "refunded"
    assert body["error"] == "order B unfulfilled: lost"
    assert [h["event"] for h in body["history"]][-2:] == ["saga:compensating", "saga:failed"]

    listed = (await api.get("/api/v1/sagas/instances",
                            params={"saga": "order-saga", "status": "failed"})).json()
    assert [i["correlation_key"] for i in listed["items"]] == ["B"]
    assert listed["total"] == 1
    sagas = {s["id"]: s for s in (await api.get("/api/v1/sagas/sagas")).json()}
    assert sagas["order-saga"]["message_types"] == [
        "FulfillmentFailed", "OrderFulfilled", "OrderPlaced", "PaymentCaptured"]
    assert sagas["order-saga"]["topic"] == "sagas.bus"
    assert sagas["order-saga"]["enabled"] is True


async def test_parked_message_completes_after_the_start(
        api: httpx.AsyncClient, runtime: RuntimeProcess) -> None:
    """PaymentCaptured before OrderPlaced is parked, then replayed: the order completes."""
    await publish(api, "PaymentCaptured", {"orderId": "P", "paymentId": "pP"})
    await publish(api, "OrderPlaced", {"orderId": "P"})
    receipt = await publish(api, "OrderFulfilled", {"orderId": "P"})
    body = (await api.get("/api/v1/sagas/instances/order-saga/P",
                          params={"after": receipt["position"]})).json()
    assert body["status"] == "completed"
    assert body["state"]["payment_id"] == "pP"
    assert [h["event"] for h in body["history"]] == [
        "saga:parked", "saga:started", "saga:state_changed", "saga:completed"]


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "NoSuchType", "payload": {}}, "body.type"),
    ({"type": "PaymentCaptured", "payload": {"orderId": "x"}}, "body.payload.paymentId"),
    ({"type": "PaymentCaptured", "payload": {"orderId": "x", "paymentId": 7}},
     "body.payload.paymentId"),
    ({"type": "OrderPlaced", "payload": {}}, "body.correlation_key"),
    ({"type": "OrderPlaced", "payload": {"orderId": "x"}, "colour": "red"}, "body.colour"),
    ({"type": "", "payload": {}}, "body.type"),
    ({"type": "OrderPlaced", "payload": {"orderId": "x"}, "saga": "nope"}, "body.saga"),
])
async def test_publish_refuses_bad_input_naming_the_field(
        api: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    """Unknown type, schema violations, missing correlation, unknown members: 422
    problem+json naming the field; nothing reaches the bus."""
    response = await api.post(PUBLISH, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_reads_refuse_bad_input(api: httpx.AsyncClient) -> None:
    """Unknown saga 404, unknown instance 404, malformed ?after= and Last-Event-ID 422,
    invalid status 422 — all problem+json."""
    cases = [
        (await api.get("/api/v1/sagas/instances/nope/x"), 404),
        (await api.get("/api/v1/sagas/instances/order-saga/never"), 404),
        (await api.get("/api/v1/sagas/instances", params={"saga": "nope"}), 404),
        (await api.get("/api/v1/sagas/instances", params={"status": "sleeping"}), 422),
        (await api.get("/api/v1/sagas/instances", params={"after": "zero"}), 422),
        (await api.get("/api/v1/sagas/subscribe", headers={"Last-Event-ID": "x"}), 422),
        (await api.post(PUBLISH, content=b"{not json",
                        headers={"content-type": "application/json"}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_concurrency_limit_rejects_an_overlapping_publish(api: httpx.AsyncClient) -> None:
    """limit=1 per key: while the first message is not applied (no runtime running), a second
    for the same key gets a 409 receipt saying it is retryable; another key is accepted."""
    await publish(api, "Work", {"id": "k1"})
    refused = await api.post(PUBLISH, json={"type": "Work", "payload": {"id": "k1"}})
    assert refused.status_code == 409
    problem = refused.json()
    assert (problem["published"], problem["retryable"]) == (False, True)
    assert problem["concurrency_key"] == "k1"
    assert refused.headers["retry-after"] == "1"
    await publish(api, "Work", {"id": "k2"})


async def test_subscribe_streams_activity_and_resumes(
        api: httpx.AsyncClient, runtime: RuntimeProcess) -> None:
    """SSE carries saga:started and saga:completed; reconnecting with Last-Event-ID resumes
    after the last event seen, with nothing repeated."""
    events: list[tuple[str, str, dict[str, Any]]] = []

    async def read(headers: dict[str, str], count: int) -> None:
        async with api.stream("GET", "/api/v1/sagas/subscribe", headers=headers) as stream:
            kind = event_id = ""
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("id:"):
                    event_id = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((kind, event_id, json.loads(line.split(":", 1)[1])))
                    if len(events) >= count:
                        return

    receipt = await publish(api, "UserSettingsCreated", {"userId": "u1"})
    await api.get("/api/v1/sagas/instances", params={"after": receipt["position"]})
    # An id is the next offset per transitions partition: "0:0" reads from the beginning.
    await asyncio.wait_for(read({"Last-Event-ID": "0:0"}, 2), 60)
    assert [(k, d["correlation_key"]) for k, _, d in events] == [
        ("saga:started", "u1"), ("saga:completed", "u1")]

    last_id = events[0][1]
    await publish(api, "UserSettingsCreated", {"userId": "u2"})
    del events[:]
    await asyncio.wait_for(read({"Last-Event-ID": last_id}, 3), 60)
    assert [(k, d["correlation_key"]) for k, _, d in events] == [
        ("saga:completed", "u1"), ("saga:started", "u2"), ("saga:completed", "u2")]


async def test_a_scheduled_message_survives_kill_9_and_fires_once(
        api: httpx.AsyncClient, runtime: RuntimeProcess) -> None:
    """A 3 s timer is recorded, the runtime is killed -9 before it is due and restarted after:
    the message is delivered exactly once and the instance completes."""
    warm = await publish(api, "UserSettingsCreated", {"userId": "warm-up"})
    await api.get("/api/v1/sagas/instances", params={"after": warm["position"]})
    receipt = await publish(api, "Start", {"id": "r1", "delay": "3s"})
    body = (await api.get("/api/v1/sagas/instances/reminder-saga/r1",
                          params={"after": receipt["position"]})).json()
    assert [t["type"] for t in body["timers"]] == ["Remind"]
    runtime.kill()
    due = body["timers"][0]["due_at"]
    runtime.start()

    async def completed() -> bool:
        found = await api.get("/api/v1/sagas/instances/reminder-saga/r1")
        return bool(found.json()["status"] == "completed")

    await eventually(completed, timeout=60, what=lambda: runtime.log())
    body = (await api.get("/api/v1/sagas/instances/reminder-saga/r1")).json()
    assert body["result"] == {"reminded": 1}
    assert body["timers"] == []
    remind = [h for h in body["history"] if h["message_type"] == "Remind"]
    assert [h["event"] for h in remind] == ["saga:completed"]
    assert remind[0]["at"] >= due


async def test_transitions_are_mirrored_into_the_durable_stream(
        log: str, runtime: RuntimeProcess, tmp_path: Path) -> None:
    """With the streams service in the graph, /sagas/instances holds each instance's latest
    status as a State-Protocol entity, readable over the Durable Streams protocol."""
    from services.streams.testing import StreamsProcess

    with StreamsProcess(log, log_file=tmp_path / "streams.log") as streams:
        settings = Settings(service_name="sagas-api", kafka_bootstrap_servers=log,
                            service_urls={"streams": streams.url})
        feed = TransitionFeed(log)
        app = create_sagas_app(settings, SagaEngine(ALL), KvSagaStore(log, feed), feed=feed,
                               partitions=2)
        async with serve_app(app) as server, httpx.AsyncClient(timeout=30) as client:
            response = await client.post(server.url + PUBLISH, json={
                "type": "UserSettingsCreated", "payload": {"userId": "m1"}})
            assert response.status_code == 202

            async def mirrored() -> bool:
                read = await client.get(streams.url + "/v1/stream/sagas/instances",
                                        params={"offset": "-1"})
                if read.status_code != 200:
                    return False
                latest = {e["key"]: e["value"] for e in read.json()}
                entity = next((v for v in latest.values() if v["correlation_key"] == "m1"),
                              None)
                return entity is not None and entity["status"] == "completed"

            await eventually(mirrored, timeout=60, what="the completed instance in the stream")

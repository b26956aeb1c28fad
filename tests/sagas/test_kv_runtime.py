"""The ``kv`` runtime (faust, exactly-once on the log): outcomes, parking, timers, bad input,
and ``kill -9`` of the processor mid-stream."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.kernel import ensure_topics
from services.log.testing import BrokerProcess
from services.sagas import SagaMessage
from services.sagas._engine import SagaEngine
from services.sagas._records import SagaInstance, Source
from services.sagas._topics import topic_configs
from services.sagas.examples import EXAMPLES
from tests.log._poll import eventually
from tests.sagas._support import RuntimeProcess, latest_instances, publish, read_topic

pytestmark = pytest.mark.slow


@pytest.fixture
def log(tmp_path: Path) -> Iterator[str]:
    """A log of this test's own (the saga topics have fixed names)."""
    with BrokerProcess(tmp_path / "log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap_servers, topic_configs(2)))
        yield broker.bootstrap_servers


def order_messages(order_id: str, *, park: bool, fail: bool) -> list[SagaMessage]:
    placed = SagaMessage(type="OrderPlaced", payload={"orderId": order_id})
    captured = SagaMessage(type="PaymentCaptured",
                           payload={"orderId": order_id, "paymentId": f"pay-{order_id}"})
    last = (SagaMessage(type="FulfillmentFailed", payload={"orderId": order_id,
                                                           "reason": "out of stock"})
            if fail else SagaMessage(type="OrderFulfilled", payload={"orderId": order_id}))
    return [captured, placed, last] if park else [placed, captured, last]


def expected_from_bus(records: Sequence[Any]) -> tuple[dict[str, dict[str, Any]], Counter[Any],
                                                        Counter[str]]:
    """Replay the bus through the engine in-process: the crash-free outcome."""
    engine = SagaEngine(EXAMPLES)
    instances: dict[str, SagaInstance] = {}
    transitions: Counter[Any] = Counter()
    commands: Counter[str] = Counter()
    for record in records:
        data = json.loads(record.value)
        key = json.loads(json.dumps(record.key.decode()))
        saga_id, correlation = key.split("/", 1)
        from services.sagas._records import message_from_json

        message = message_from_json(data["message"])
        from dataclasses import replace

        message = replace(message, correlation_key=correlation)
        step = engine.apply(instances.get(key), saga_id=saga_id, correlation_key=correlation,
                            message=message, now=datetime.fromtimestamp(record.timestamp / 1000,
                                                                        UTC),
                            source=Source(topic="sagas.bus", partition=record.partition,
                                          offset=record.offset), partition=record.partition)
        instances[key] = step.instance
        transitions.update((t.instance_id, t.version, t.event) for t in step.transitions)
        commands.update(o.idempotency_key or "" for o in step.outputs if o.kind == "command")
    return {k: v.to_json() for k, v in instances.items()}, transitions, commands


async def test_order_saga_outcomes_parking_and_a_bad_record(log: str, tmp_path: Path) -> None:
    """Happy path completes, compensation refunds then fails, an early PaymentCaptured is
    parked and replayed, a terminal instance ignores late messages, a bad record is
    dead-lettered and the next good one still applies."""
    with RuntimeProcess(log, tmp_path / "runtime") as runtime:
        await publish(log, "order-saga", order_messages("ok", park=False, fail=False),
                      correlation_key="ok")
        await publish(log, "order-saga", order_messages("bad", park=False, fail=True),
                      correlation_key="bad")
        await publish(log, "order-saga", order_messages("early", park=True, fail=False),
                      correlation_key="early")
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=log)
        await producer.start()
        await producer.send_and_wait("sagas.bus", key=b"order-saga/x", value=b"{not json")
        await producer.stop()
        await publish(log, "order-saga", [SagaMessage(type="OrderFulfilled",
                                                      payload={"orderId": "ok"})],
                      correlation_key="ok")
        await publish(log, "user-settings-saga", [
            SagaMessage(type="UserSettingsCreated", payload={"userId": "u1"})],
            correlation_key="u1")

        async def settled() -> bool:
            latest = await latest_instances(log)
            return "user-settings-saga/u1" in latest and all(
                latest.get(f"order-saga/{k}", {}).get("status") in ("completed", "failed")
                for k in ("ok", "bad", "early"))

        await eventually(settled, timeout=60, what=lambda: f"outcomes\n{runtime.log()}")
        latest = await latest_instances(log)
        assert latest["order-saga/ok"]["status"] == "completed"
        assert latest["order-saga/ok"]["result"] == {"orderId": "ok", "paymentId": "pay-ok"}
        assert latest["order-saga/bad"]["status"] == "failed"
        assert latest["order-saga/bad"]["state"]["status"] == "refunded"
        assert latest["order-saga/bad"]["error"] == "order bad unfulfilled: out of stock"
        assert latest["order-saga/early"]["status"] == "completed"
        assert latest["user-settings-saga/u1"]["status"] == "completed"

        events = [(json.loads(r.value)["correlation_key"], json.loads(r.value)["event"])
                  for r in await read_topic(log, "sagas.transitions")]
        ok = [e for k, e in events if k == "ok"]
        assert ok == ["saga:started", "saga:state_changed", "saga:completed", "saga:ignored"]
        bad = [e for k, e in events if k == "bad"]
        assert bad == ["saga:started", "saga:state_changed", "saga:compensating", "saga:failed"]
        early = [e for k, e in events if k == "early"]
        assert early == ["saga:parked", "saga:started", "saga:state_changed", "saga:completed"]

        commands = [json.loads(r.value) for r in await read_topic(log, "sagas.commands")]
        assert sorted(c["idempotency_key"] for c in commands) == [
            "charge:bad", "charge:early", "charge:ok", "refund:bad"]
        dead = await read_topic(log, "sagas.bus.dlq")
        assert [r.value for r in dead] == [b"{not json"]
        assert dict(dead[0].headers)["x-error-type"] == b"JSONDecodeError"


async def test_kill_9_mid_stream_changes_nothing(log: str, tmp_path: Path) -> None:
    """kill -9 of the processor three times while messages flow: every instance ends as in a
    crash-free run, each transition is recorded once, each command is emitted once."""
    orders = [f"o{i}" for i in range(36)]
    batches: list[list[tuple[str, list[SagaMessage]]]] = [[] for _ in range(4)]
    for i, order in enumerate(orders):
        batches[i % 4].append((order, order_messages(order, park=i % 5 == 0, fail=i % 3 == 0)))
    runtime = RuntimeProcess(log, tmp_path / "runtime").start()
    try:
        for number, batch in enumerate(batches):
            for order, messages in batch:
                await publish(log, "order-saga", messages, correlation_key=order)
            if number < 3:
                before = len(await read_topic(log, "sagas.transitions"))

                async def progressed(before: int = before) -> bool:
                    return len(await read_topic(log, "sagas.transitions")) > before

                await eventually(progressed, timeout=60, what=lambda: f"progress\n{runtime.log()}")
                runtime.kill()
                runtime.start()

        async def done() -> bool:
            latest = await latest_instances(log)
            return all(latest.get(f"order-saga/{o}", {}).get("status") in ("completed", "failed")
                       for o in orders)

        await eventually(done, timeout=120, what=lambda: f"all orders settled\n{runtime.log()}")
    finally:
        runtime.stop()

    expected, transitions, commands = expected_from_bus(await read_topic(log, "sagas.bus"))
    assert await latest_instances(log) == expected
    recorded = Counter((json.loads(r.value)["instance_id"], json.loads(r.value)["version"],
                        json.loads(r.value)["event"])
                       for r in await read_topic(log, "sagas.transitions"))
    assert recorded == transitions
    assert max(recorded.values()) == 1
    emitted = Counter(json.loads(r.value)["idempotency_key"]
                      for r in await read_topic(log, "sagas.commands"))
    assert emitted == commands
    assert max(emitted.values()) == 1

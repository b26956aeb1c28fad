"""The ``kv`` runtime (a real processor on a private log) when handlers raise, and when
effects reach other sagas: a spawned child and a ``send`` to a saga target."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.kernel import ensure_topics
from services.log.testing import BrokerProcess
from services.sagas import SagaMessage
from services.sagas._engine import instance_id_for
from services.sagas._records import bus_value, instance_key
from services.sagas._topics import topic_configs
from tests.log._poll import eventually
from tests.sagas._support import RuntimeProcess, latest_instances, publish, read_topic
from tests.sagas.failing_sagas import SPEC

pytestmark = pytest.mark.slow

PARTITIONS = 2


@pytest.fixture
def log(tmp_path: Path) -> Iterator[str]:
    """A log of this test's own (the saga topics have fixed names)."""
    with BrokerProcess(tmp_path / "log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap_servers, topic_configs(PARTITIONS)))
        yield broker.bootstrap_servers


def bus_partition(saga_id: str, correlation_key: str) -> int:
    """The bus partition the producer's default partitioner picks for an instance."""
    partitions = list(range(PARTITIONS))
    return int(DefaultPartitioner()(instance_key(saga_id, correlation_key).encode(), partitions,
                                    partitions))


async def test_a_handler_that_keeps_raising_fails_the_instance_and_dead_letters(
        log: str, tmp_path: Path) -> None:
    """After 3 attempts the instance is failed with the error, the message is on
    sagas.bus.dlq with x-error-* headers, and the next message on the same partition
    still applies."""
    # The healthy instance shares the failing one's partition: the failure must not block it.
    healthy = next(key for key in (f"ok-{n}" for n in range(100))
                   if bus_partition("flaky-saga", key) == bus_partition("flaky-saga", "bad"))
    failing = SagaMessage(type="Attempt", payload={"id": "bad", "fail": True},
                          idempotency_key="attempt-bad")
    with RuntimeProcess(log, tmp_path / "runtime", sagas=SPEC) as runtime:
        await publish(log, "flaky-saga", [failing], correlation_key="bad")
        await publish(log, "flaky-saga", [SagaMessage(type="Attempt", payload={"id": healthy})],
                      correlation_key=healthy)

        async def settled() -> bool:
            latest = await latest_instances(log)
            return (latest.get("flaky-saga/bad", {}).get("status") == "failed"
                    and latest.get(f"flaky-saga/{healthy}", {}).get("status") == "completed")

        await eventually(settled, timeout=45, what=lambda: f"both settled\n{runtime.log()}")

    latest = await latest_instances(log)
    bad = latest["flaky-saga/bad"]
    assert bad["error"] == ("saga 'flaky-saga': the 'Attempt' handler raised ValueError: "
                            "cannot process bad (after 3 attempts)")
    assert "attempt-bad" in bad["seen"]
    assert latest[f"flaky-saga/{healthy}"]["result"] == {"id": healthy}

    [dead] = await read_topic(log, "sagas.bus.dlq")
    assert dead.key == b"flaky-saga/bad"
    assert json.loads(dead.value) == bus_value(
        "flaky-saga", SagaMessage(type="Attempt", payload={"id": "bad", "fail": True},
                                  correlation_key="bad", idempotency_key="attempt-bad"))
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["x-error-type"] == "ValueError"
    assert headers["x-error-message"] == "cannot process bad"
    assert headers["x-error-attempts"] == "3"
    assert headers["x-saga-instance-id"] == instance_id_for("flaky-saga", "bad")

    assert len({r.partition for r in await read_topic(log, "sagas.bus")}) == 1
    transitions = [json.loads(r.value) for r in await read_topic(log, "sagas.transitions")]
    assert [(t["event"], t["from"], t["to"]) for t in transitions
            if t["correlation_key"] == "bad"] == [("saga:failed", "pending", "failed")]


async def test_spawn_and_send_reach_other_sagas(log: str, tmp_path: Path) -> None:
    """A spawn effect starts a child instance that completes, and a send to a saga target
    reaches that saga's instance (routed by its correlation rule)."""
    with RuntimeProcess(log, tmp_path / "runtime", sagas=SPEC) as runtime:
        await publish(log, "parent-saga", [SagaMessage(type="Adopt", payload={"id": "p1"})],
                      correlation_key="p1")

        async def reached() -> bool:
            latest = await latest_instances(log)
            return all(latest.get(key, {}).get("status") == "completed"
                       for key in ("child-saga/p1-kid", "mailbox-saga/p1-box"))

        await eventually(reached, timeout=45, what=lambda: f"child and mailbox\n{runtime.log()}")

    latest = await latest_instances(log)
    assert latest["parent-saga/p1"]["status"] == "running"
    assert latest["child-saga/p1-kid"]["result"] == {"parent": "p1"}
    assert latest["mailbox-saga/p1-box"]["result"] == {"from": "p1"}
    parent_id = instance_id_for("parent-saga", "p1")
    bus = {r.key.decode(): (json.loads(r.value), dict(r.headers))
           for r in await read_topic(log, "sagas.bus")}
    spawned, spawn_headers = bus["child-saga/p1-kid"]
    assert spawned["message"]["type"] == "Born"
    assert spawn_headers["x-saga-parent"] == parent_id.encode()
    assert spawn_headers["idempotency-key"] == f"{parent_id}:1:0".encode()
    sent, _ = bus["mailbox-saga/p1-box"]
    assert sent["message"]["idempotency_key"] == f"{parent_id}:1:1"

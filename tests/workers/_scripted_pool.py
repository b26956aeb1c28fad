"""A pool played by the test: it speaks the pool side of the protocol by hand (heartbeats,
started/finished reports) so a dispatcher test decides exactly when each pool answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.workers._records import (
    Finished,
    Heartbeat,
    HeldLease,
    PoolEvent,
    Started,
    report_to_json,
)
from services.workers._topics import ASSIGNMENTS, REPORTS, assignment_partition
from tests.log._poll import eventually


class ScriptedPool:
    """One pool id; ``received`` holds every assignment/revocation addressed to it."""

    def __init__(self, bootstrap: str, pool_id: str, *, capacity: int = 4, urgent: int = 1,
                 lease_seconds: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.pool_id = pool_id
        self.capacity = capacity
        self.urgent = urgent
        self.lease_seconds = lease_seconds
        self.received: list[dict[str, Any]] = []
        self.held: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedPool]:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          enable_idempotence=True)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          isolation_level="read_committed",
                                          enable_auto_commit=False)
        await self._producer.start()
        await self._consumer.start()
        tp = TopicPartition(ASSIGNMENTS, assignment_partition(self.pool_id))
        await eventually(self._has_topic, timeout=60, what="the workers' topics")
        self._consumer.assign([tp])
        await self._consumer.seek_to_end(tp)
        await self._consumer.position(tp)
        reader = asyncio.create_task(self._read())
        try:
            yield self
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._consumer.stop()
            await self._producer.stop()

    async def _has_topic(self) -> bool:
        await self._consumer._client.force_metadata_update()
        return bool(self._consumer.partitions_for_topic(ASSIGNMENTS))

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    value = json.loads(record.value)
                    if value.get("pool") == self.pool_id:
                        self.received.append(value)
                        if value["type"] == "lease":
                            self.held[value["execution_id"]] = value["token"]
                        elif self.held.get(value["execution_id"]) == value["token"]:
                            del self.held[value["execution_id"]]

    async def send(self, events: Sequence[PoolEvent]) -> None:
        await self._producer.send_and_wait(
            REPORTS, key=self.pool_id.encode(),
            value=json.dumps(report_to_json(self.pool_id, list(events))).encode())

    def beat(self, progress: dict[str, Any] | None = None) -> Heartbeat:
        progress = progress or {}
        return Heartbeat(capacity=self.capacity, urgent_reserved=self.urgent,
                         lease_seconds=self.lease_seconds,
                         leases=tuple(HeldLease(execution_id=e, token=t, progress=progress.get(e))
                                      for e, t in self.held.items()))

    async def heartbeat(self, progress: dict[str, Any] | None = None) -> None:
        await self.send([self.beat(progress)])

    def leases(self) -> list[dict[str, Any]]:
        return [r for r in self.received if r["type"] == "lease"]

    def revocations(self) -> list[dict[str, Any]]:
        return [r for r in self.received if r["type"] == "revoke"]

    async def finish(self, execution_id: str, token: int, *, ok: bool = True,
                     result: Any = None, error: str | None = None,
                     retryable: bool = True) -> None:
        self.held.pop(execution_id, None)
        await self.send([Started(execution_id=execution_id, token=token),
                         Finished(execution_id=execution_id, token=token, ok=ok, result=result,
                                  error=error, retryable=retryable)])

    async def work(self, stop: asyncio.Event, *, heartbeat_every: float = 0.5) -> None:
        """Complete every lease as it arrives (ok, result = the token), heartbeating."""
        done: set[tuple[str, int]] = set()
        loop = asyncio.get_running_loop()
        next_beat = 0.0
        while not stop.is_set():
            events: list[PoolEvent] = []
            for lease in self.leases():
                key = (lease["execution_id"], lease["token"])
                if key not in done:
                    done.add(key)
                    self.held.pop(key[0], None)
                    events += [Started(execution_id=key[0], token=key[1]),
                               Finished(execution_id=key[0], token=key[1], ok=True,
                                        result={"token": key[1]})]
            if loop.time() >= next_beat:
                events.append(self.beat())
                next_beat = loop.time() + heartbeat_every
            if events:
                await self.send(events)
            await asyncio.sleep(0.01)

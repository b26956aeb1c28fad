"""Exactly-once fixes for faust-streaming.

Under ``processing_guarantee="exactly_once"`` faust commits the consumed offsets inside a
producer transaction, but table changelog records travel through an asynchronous send buffer.
faust neither drains that buffer before committing nor stops it while committing, so a
transaction can commit the offsets of events whose changelog records went into the *next*
transaction — which a crash then aborts, losing those updates (seen here with a counting table:
short by the ~25 events of the aborted transaction), or carry records of events after the
committed offsets, which a restart then applies twice.

The fix: while a commit runs, the buffer's sender is held at a gate. The commit first drains
every record queued so far into the open transaction, then — with no await in between, so no
event can be processed meanwhile — takes the committable offsets, sends them and commits.
Records queued during the commit wait at the gate for the next transaction. Agents that do not
await in the middle of an event therefore commit every event's records with its offset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer


class GatedProducerBuffer(ProducerBuffer):
    """faust's producer buffer, with a gate a commit can close."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._parked: list[Any] = []

    async def _send_pending(self, fut: Any) -> None:
        if not self._open.is_set():
            # Popped while a commit drains: the drain sends it, in order, in this transaction.
            self._parked.append(fut)
            await self._open.wait()
            return
        self._idle.clear()
        try:
            await super()._send_pending(fut)
        finally:
            self._idle.set()

    @contextlib.asynccontextmanager
    async def drained(self) -> AsyncIterator[None]:
        """Hold the sender; on entry every record queued so far has been handed to Kafka."""
        self._open.clear()
        try:
            await self._idle.wait()
            while self._parked or not self.pending.empty():
                fut = self._parked.pop(0) if self._parked else self.pending.get_nowait()
                await super()._send_pending(fut)
            yield
        finally:
            self._open.set()


class Producer(faust_aiokafka.Producer):
    """faust's aiokafka producer with the gated buffer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = GatedProducerBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        self.buffer = buffer


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose transactional commits drain the buffer first."""

    async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
        buffer = self.app.producer.buffer
        if not (self.in_transaction and isinstance(buffer, GatedProducerBuffer)):
            result: bool = await super()._commit_tps(tps, start_new_transaction)
            return result
        async with buffer.drained():
            # The base method takes the committable offsets before its first await.
            result = await super()._commit_tps(list(tps), start_new_transaction)
            return result


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with NetScript's exactly-once fixes."""

    Consumer = Consumer
    Producer = Producer

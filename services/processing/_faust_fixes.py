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
await in the middle of an event therefore commit every event's records with its offset. The
buffer also carries :class:`RawRecord` values (queued by ``_emit.emit``): already serialized, with
their transaction named, handed to aiokafka without faust's per-record layers — queued and
drained exactly like faust's own records, so the argument covers them too.

A third: under exactly-once, faust's table recovery takes each changelog partition's end
(its "highwater") from the consumer's cached last stable offset — known only once a fetch of
that partition came back. Right after a restart nothing has been fetched yet, the cache says
0, and recovery reads *nothing*: the processor starts with empty tables (seen here with the
single-partition workers dispatcher after a ``kill -9``). The fix asks the log instead
(``ListOffsets``; the consumer is ``read_committed``, so that is the last stable offset). Where
the partition ends with a transaction marker, recovery then waits for a record at the marker's
offset that never comes, until faust's 10 s fallback (two idle 5 s polls) notices. Stopping at
the last committed data record instead made recovery fast, but a processor that resumes while
its crashed predecessor's group membership is still being settled then hit further faust
rebalance flaws (updates lost or applied twice under CPU load), so the 10 s stays.

A second weakness: faust picks a record's transaction by the partition the record is *sent
to*, so an event of partition 0 that emits to partition 2 puts that record into partition 2's
transaction — committed with partition 2's offsets (or never, if another worker owns
partition 2). A crash then keeps the event's offset and loses its output, or the reverse. The
fix: a record sent with :func:`source_headers` of its event goes into the transaction of the
event's own partition, which is the one that commits the event's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.transport.consumer import TransactionManager as FaustTransactionManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import EventT

SOURCE_HEADER = "x-netscript-source"
"""Carries ``<topic>:<partition>`` of the event a record is emitted for (removed on send)."""


def source_headers(event: EventT[Any]) -> list[tuple[str, bytes]]:
    """Headers that make a record emitted for ``event`` commit in ``event``'s transaction.

    Add them to every record an exactly-once agent sends for an event (faust's table changelogs
    need none: they go to the event's partition already). Outside a transaction they are empty.
    """
    if not event.app.in_transaction:
        return []
    tp = event.message.tp
    return [(SOURCE_HEADER, f"{tp.topic}:{tp.partition}".encode())]


@dataclass(frozen=True, kw_only=True, slots=True)
class RawRecord:
    """A serialized record for a known partition and transaction (see :func:`emit`).

    It skips faust's per-record layers (``FutureMessage``, ``Topic.publish_message``, sensors,
    ``TransactionManager``), which cost about 200 µs a record, but travels through the same
    gated buffer, so the commit argument above holds for it unchanged.
    """

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    transactional_id: str | None


class GatedProducerBuffer(ProducerBuffer):
    """faust's producer buffer, with a gate a commit can close."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._parked: list[Any] = []

    def put_record(self, record: RawRecord) -> None:
        """Queue ``record`` behind the records queued so far."""
        self.pending.put_nowait(record)

    async def _send_pending(self, fut: Any) -> None:
        if not self._open.is_set():
            # Popped while a commit drains: the drain sends it, in order, in this transaction.
            self._parked.append(fut)
            await self._open.wait()
            return
        self._idle.clear()
        try:
            await self._send_item(fut)
        finally:
            self._idle.set()

    async def _send_item(self, item: Any) -> None:
        if isinstance(item, RawRecord):
            await self._send_record(item)
        else:
            await super()._send_pending(item)

    async def _send_record(self, record: RawRecord) -> None:
        # faust's Producer.send minus its on_produce_message signal: the same aiokafka
        # producer, under the same per-transaction lock that its commits take.
        producer = cast(faust_aiokafka.Producer, self.app.producer)  # type: ignore[union-attr]
        tid = record.transactional_id
        try:
            if tid is None:
                await producer._ensure_producer().send(
                    record.topic, record.value, key=record.key, partition=record.partition,
                    headers=record.headers)
                return
            transaction_producer = producer._transaction_producers.get(tid)
            if transaction_producer is None:
                raise ProducerSendError(f"No transaction producer found for : {tid}")
            async with producer._trn_locks[tid]:
                await transaction_producer.send(
                    record.topic, record.value, key=record.key, partition=record.partition,
                    headers=record.headers)
        except KafkaError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc

    @contextlib.asynccontextmanager
    async def drained(self) -> AsyncIterator[None]:
        """Hold the sender; on entry every record queued so far has been handed to Kafka."""
        self._open.clear()
        try:
            await self._idle.wait()
            while self._parked or not self.pending.empty():
                fut = self._parked.pop(0) if self._parked else self.pending.get_nowait()
                await self._send_item(fut)
            yield
        finally:
            self._open.set()


class Producer(faust_aiokafka.Producer):
    """faust's aiokafka producer with the gated buffer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = GatedProducerBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        if self.app.in_transaction:
            # Above max_messages waiting records faust's conductor stops delivering events
            # until records are sent (wait_until_ebb, polling 0.1 s at a time); while a commit
            # holds the gate nothing is sent, so leave room for the records queued meanwhile.
            # Not under at-least-once: there faust commits offsets without waiting for the
            # buffer, and a deeper buffer widens what a crash loses (tests/log/test_faust.py).
            buffer.max_messages = 10_000
        self.buffer = buffer


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Highwaters from the log, never from the fetch cache (see the module docstring)."""

    async def _highwaters(self, partitions: list[Any]) -> Any:
        return await self._ensure_consumer().end_offsets(partitions)


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose transactional commits drain the buffer first."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
        buffer = self.app.producer.buffer
        if not (self.in_transaction and isinstance(buffer, GatedProducerBuffer)):
            result: bool = await super()._commit_tps(tps, start_new_transaction)
            return result
        async with buffer.drained():
            # The base method takes the committable offsets before its first await.
            result = await super()._commit_tps(list(tps), start_new_transaction)
            return result


class TransactionManager(FaustTransactionManager):
    """Sends a record carrying :data:`SOURCE_HEADER` in its source event's transaction."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None, timestamp: float | None, headers: Any, *,
                   transactional_id: str | None = None) -> Any:
        source, headers = _pop_source(headers)
        if source is None:
            return await super().send(topic, key, value, partition, timestamp, headers,
                                      transactional_id=transactional_id)
        source_topic, _, source_partition = source.rpartition(":")
        group = self.app.assignor.group_for_topic(source_topic)
        return await self.producer.send(
            topic, key, value, self.consumer.key_partition(topic, key, partition), timestamp,
            headers, transactional_id=f"{self.app.conf.id}-{group}-{source_partition}")


def _pop_source(headers: Any) -> tuple[str | None, Any]:
    if not headers:
        return None, headers
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    source = next((v for k, v in items if k == SOURCE_HEADER), None)
    if source is None:
        return None, headers
    rest = [(k, v) for k, v in items if k != SOURCE_HEADER]
    return (source.decode() if isinstance(source, bytes) else str(source)), rest


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with NetScript's exactly-once fixes."""

    Consumer = Consumer
    Producer = Producer
    TransactionManager = TransactionManager

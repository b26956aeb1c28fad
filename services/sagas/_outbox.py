"""The outbox of the ``postgres`` saga runtime, and the relay that puts it on the log once.

The runtime writes every record a step produces (effects, transitions, dead letters) as a row
of ``saga_runtime_outbox`` in the transaction that commits the step. The relay emits them:

1. it claims the unclaimed rows, in id order, into batch ``n`` (a sequence value) — one
   Postgres transaction, so each row belongs to exactly one batch;
2. it sends batch ``n`` in one Kafka transaction that also commits ``n`` as the offset of a
   marker consumer group: batch ``n``'s records are visible to ``read_committed`` readers if
   and only if the marker reached ``n``;
3. only then it marks batch ``n`` emitted in Postgres. A crash between 2 and 3 leaves it
   pending;
4. a restarted relay registers the same transactional id (derived from the database's
   ``saga_runtime_relay.relay_id``), which fences the old producer and finishes its open
   transaction; it then reads the marker once: pending batches up to the marker are marked
   emitted without sending, later ones (aborted, never visible) are sent again, same rows;
5. so each row lands in exactly one committed Kafka transaction: none is lost (a pending
   batch is always resent or proved committed) and none is emitted twice (it is resent only
   when its earlier attempt aborted).

One relay runs per database: it holds a session advisory lock on its own connection and does
all its Postgres work on that connection, so a relay that lost the lock cannot claim or mark.
Each record carries an ``x-outbox-id`` header (its row id) for tracing and for consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.sagas._errors import SagaRuntimeError
from services.sagas._records import Output, Transition
from services.sagas._topics import BUS, COMMANDS, DEAD_LETTER, TRANSITIONS

log = logging.getLogger("netscript.sagas")

OUTPUT_TOPICS = {"bus": BUS, "command": COMMANDS, "dead_letter": DEAD_LETTER}
BATCH_SIZE = 500
# The marker offset lives on a partition every runtime creates; nobody consumes the group.
_MARKER_PARTITION = TopicPartition(DEAD_LETTER, 0)
_RELAY_LOCK_KEY = 0x5A6A1002


POSTGRES_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What asyncpg raises when Postgres is away or refuses: translated at our boundary."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxRecord:
    """One record for the log, as the outbox stores it."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)

    @classmethod
    def of_output(cls, output: Output) -> OutboxRecord:
        return cls(topic=OUTPUT_TOPICS[output.kind], key=output.key.encode(),
                   value=json.dumps(output.value).encode(),
                   headers=tuple(output.headers.items()))

    @classmethod
    def of_transition(cls, transition: Transition) -> OutboxRecord:
        return cls(topic=TRANSITIONS, key=transition.key.encode(),
                   value=json.dumps(transition.to_json()).encode())


async def enqueue(connection: Any, records: Iterable[OutboxRecord]) -> int:
    """Insert ``records`` into the outbox (inside the caller's transaction); returns how many."""
    rows = [(r.topic, r.key, r.value, json.dumps([list(h) for h in r.headers]))
            for r in records]
    if rows:
        await connection.executemany(
            "insert into saga_runtime_outbox (topic, key, value, headers) "
            "values ($1, $2, $3, $4::text::jsonb)", rows)
    return len(rows)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Row:
    id: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class OutboxRelay:
    """Emits the outbox to the log exactly once (see the module docstring).

    ``async with OutboxRelay(pool, bootstrap_servers=...) as relay: await relay.run(stop)``.
    """

    def __init__(self, pool: asyncpg.Pool, *, bootstrap_servers: str,
                 poll_interval: float = 0.5, batch_size: int = BATCH_SIZE) -> None:
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._poll = poll_interval
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._connection: Any = None
        self._producer: AIOKafkaProducer | None = None
        self._marker_group = ""
        self._state = "new"

    def wake(self) -> None:
        """New rows were committed: look now rather than at the next poll."""
        self._wake.set()

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise SagaRuntimeError("an OutboxRelay cannot be reopened; create a new one")
        self._state = "open"
        try:
            self._connection = await self._pool.acquire()
        except POSTGRES_ERRORS as exc:
            self._state = "closed"
            raise SagaRuntimeError(f"the outbox relay cannot reach Postgres: {exc}") from exc
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        if self._producer is not None:
            try:
                await self._producer.stop()
            except KafkaError as error:  # fenced or the log is gone: nothing left to flush
                log.warning("sagas outbox relay: producer did not stop cleanly: %s", error)
        if self._connection is not None:
            # The pool resets a released connection (pg_advisory_unlock_all among it), which
            # hands the relay lock to a waiting runtime.
            await self._pool.release(self._connection)
            self._connection = None

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set (the writers have stopped), then emit what is left and
        return. Raises :class:`SagaRuntimeError`."""
        if self._state != "open":
            raise SagaRuntimeError("run the OutboxRelay inside its `async with` block")
        try:
            if not await self._acquire_lock(stop):
                return
            await self._start_producer()
            await self._recover()
            while True:
                # Cleared before looking, so rows committed while we look wake the next wait.
                self._wake.clear()
                if await self._emit_batch():
                    continue
                if stop.is_set():
                    return
                await wait_or_timeout(self._wake, timeout=self._poll)
        except POSTGRES_ERRORS as exc:
            raise SagaRuntimeError(f"the outbox relay lost Postgres: {exc}") from exc
        except KafkaError as exc:
            raise SagaRuntimeError(f"the outbox relay cannot write to the log at "
                                   f"{self._bootstrap}: {exc}") from exc

    # -- steps ------------------------------------------------------------------------------

    async def _acquire_lock(self, stop: asyncio.Event) -> bool:
        # Polled rather than blocking in pg_advisory_lock, so a waiting relay stops promptly.
        while not await self._connection.fetchval(
                "select pg_try_advisory_lock($1, hashtext(current_schema()))", _RELAY_LOCK_KEY):
            if stop.is_set():
                return False
            await wait_or_timeout(self._wake, timeout=1.0)
        return True

    async def _start_producer(self) -> None:
        relay_id = await self._connection.fetchval("select relay_id from saga_runtime_relay")
        self._marker_group = f"netscript-sagas-outbox-{relay_id}"
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, client_id="netscript-sagas-outbox",
            transactional_id=f"netscript-sagas-outbox-{relay_id}", acks="all",
            enable_idempotence=True, linger_ms=0)
        await self._producer.start()

    async def _recover(self) -> None:
        producer = self._producer
        assert producer is not None
        # Beginning a transaction waits for InitProducerId, which fences the previous relay
        # and finishes its open transaction: only now is the marker final.
        await producer.begin_transaction()
        await producer.commit_transaction()
        marker = await self._marker()
        done = await self._connection.fetch(
            "update saga_runtime_outbox set emitted = true, emitted_at = now() "
            "where batch <= $1 and not emitted returning batch", marker)
        if done:
            log.info("sagas outbox relay: batch %s was emitted before a crash; marked it",
                     sorted({r["batch"] for r in done}))

    async def _marker(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap,
                                    client_id="netscript-sagas-outbox")
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(
                self._marker_group, partitions=[_MARKER_PARTITION])
        finally:
            await admin.close()
        found = offsets.get(_MARKER_PARTITION)
        return -1 if found is None else int(found.offset)

    async def _emit_batch(self) -> int:
        """Emit one batch (a pending one first); returns how many records it held."""
        producer = self._producer
        assert producer is not None
        batch, rows = await self._claim()
        if not rows:
            return 0
        await producer.begin_transaction()
        try:
            futures = [await producer.send(
                row.topic, key=row.key, value=row.value,
                headers=[*row.headers, ("x-outbox-id", str(row.id).encode())]) for row in rows]
            await asyncio.gather(*futures)
            await producer.send_offsets_to_transaction({_MARKER_PARTITION: batch},
                                                       self._marker_group)
            await producer.commit_transaction()
        except KafkaError:
            # Abort if we still can; if not (fenced, log gone), the next relay's fencing
            # aborts it. Either way the batch stays pending and is sent again.
            await _abort_quietly(producer)
            raise
        await self._connection.execute(
            "update saga_runtime_outbox set emitted = true, emitted_at = now() where batch = $1",
            batch)
        return len(rows)

    async def _claim(self) -> tuple[int, list[_Row]]:
        """The pending batch if there is one, else a new batch of the oldest unclaimed rows."""
        connection = self._connection
        columns = "batch, id, topic, key, value, headers::text as headers"
        async with connection.transaction():
            pending = await connection.fetchval(
                "select min(batch) from saga_runtime_outbox where batch is not null "
                "and not emitted")
            if pending is not None:
                log.info("sagas outbox relay: sending batch %d again (its first attempt was "
                         "aborted by a crash)", pending)
                records = await connection.fetch(
                    f"select {columns} from saga_runtime_outbox where batch = $1", pending)
            else:
                # The sub-select runs once, and only when a row is claimed: an idle poll takes
                # no batch number.
                records = await connection.fetch(
                    f"update saga_runtime_outbox set batch = (select nextval("
                    f"'saga_runtime_outbox_batch')) where id in (select id from "
                    f"saga_runtime_outbox where batch is null order by id limit $1 "
                    f"for update skip locked) returning {columns}", self._batch_size)
        if not records:
            return 0, []
        rows = sorted((_row(r) for r in records), key=lambda r: r.id)
        return int(records[0]["batch"]), rows


def _row(record: Mapping[str, Any]) -> _Row:
    headers = [(str(k), str(v).encode()) for k, v in json.loads(record["headers"])]
    return _Row(id=int(record["id"]), topic=str(record["topic"]), key=record["key"],
                value=record["value"], headers=headers)


async def _abort_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.abort_transaction()
    except KafkaError as exc:
        log.warning("sagas outbox relay: could not abort the transaction: %s", exc)


async def wait_or_timeout(event: asyncio.Event, *, timeout: float) -> None:
    """Return when ``event`` is set or after ``timeout`` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()

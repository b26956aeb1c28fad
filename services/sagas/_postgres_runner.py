"""The ``postgres`` saga runtime: the bus applied to ``saga_runtime_*`` tables, exactly once.

For each bus record, ONE Postgres transaction: lock the partition's row of
``saga_runtime_offsets`` (skip the record if it is behind it — a replay after a crash), lock
or create the instance row, let the :class:`SagaEngine` apply the message, write the instance,
its transitions and an outbox row per transition and effect, and advance the offset. A crash
before the commit changes nothing; after it, the record is skipped when it comes again. Bus
offsets live in Postgres, not in the consumer group (which only spreads the partitions), and
each partition is sought to its stored offset when assigned.

Due timers are polled from the ``next_due_ms`` index and fired the same transactional way.
The :class:`~services.sagas._outbox.OutboxRelay` puts the outbox on the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.kernel import Settings, create_consumer, ensure_topics
from services.kernel._tracing import consume_span, traceparent_of, tracer
from services.sagas._engine import SagaEngine, Step, utc_now
from services.sagas._errors import SagaError, SagaHandlerError, SagaRuntimeError
from services.sagas._messages import SagaMessage
from services.sagas._migrations import apply_migrations
from services.sagas._outbox import (
    POSTGRES_ERRORS,
    OutboxRelay,
    enqueue,
    wait_or_timeout,
)
from services.sagas._postgres_store import INSTANCE_COLUMNS, instance_from_row
from services.sagas._postgres_writes import (
    dead_letter,
    lock_instance,
    lock_offset,
    write_step,
)
from services.sagas._records import SagaInstance, Source, message_from_json
from services.sagas._retrying import apply_with_retries
from services.sagas._topics import BUS, DEAD_LETTER, DEFAULT_PARTITIONS, topic_configs

log = logging.getLogger("netscript.sagas")

Clock = Callable[[], datetime]

# Errors a bad record raises while being decoded: it goes to the dead-letter topic.
_UNDECODABLE = (ValueError, KeyError, TypeError, AttributeError, SagaError)


class PostgresSagaRuntime:
    """Runs sagas on the ``postgres`` store: consumer, timer poll and outbox relay.

    ``async with PostgresSagaRuntime(engine, pool=pool, bootstrap_servers=...) as runtime:
    await runtime.run()``. Entering applies the migrations, creates the topics and joins the
    consumer group (``group_id=None``: no group, this runtime owns every bus partition);
    :meth:`run` returns after :meth:`shutdown` (or ``stop``) once the outbox is drained, and
    raises :class:`SagaRuntimeError` when Postgres or the log fails. The pool needs three
    connections at least: the outbox relay keeps one, the bus and the timer poll take one per
    transaction.
    """

    def __init__(self, engine: SagaEngine, *, pool: asyncpg.Pool, bootstrap_servers: str,
                 group_id: str | None = "netscript-sagas-pg", clock: Clock = utc_now,
                 partitions: int = DEFAULT_PARTITIONS, timer_interval: float = 0.25,
                 session_timeout_ms: int = 10_000, heartbeat_interval_ms: int = 3_000) -> None:
        self.engine = engine
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._group_id = group_id
        self._clock = clock
        self._partitions = partitions
        self._timer_interval = timer_interval
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._relay = OutboxRelay(pool, bootstrap_servers=bootstrap_servers)
        self._stop = asyncio.Event()
        self._exit = AsyncExitStack()
        self._consumer: AIOKafkaConsumer | None = None
        self._listener: _SeekToStoredOffsets | None = None
        self._state = "new"

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise SagaRuntimeError("a PostgresSagaRuntime cannot be reopened; create a new one")
        self._state = "open"
        try:
            await apply_migrations(self._pool)
            await ensure_topics(self._bootstrap, topic_configs(self._partitions))
            await self._exit.enter_async_context(self._relay)
            consumer = create_consumer(
                Settings(service_name="netscript-sagas-pg",
                         kafka_bootstrap_servers=self._bootstrap),
                group_id=self._group_id, session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=self._heartbeat_interval_ms)
            self._listener = _SeekToStoredOffsets(self._pool, consumer)
            owned = [] if self._group_id is not None else await self._bus_partitions()
            if self._group_id is not None:
                consumer.subscribe([BUS], listener=self._listener)
            await consumer.start()
            self._exit.push_async_callback(_stop_consumer, consumer)
            self._consumer = consumer
            if owned:
                consumer.assign(owned)
                await self._listener.on_partitions_assigned(owned)
                self._listener.check()
        except KafkaError as exc:
            self._state = "closed"
            await self._exit.aclose()
            raise SagaRuntimeError(f"cannot consume {BUS} from the log at {self._bootstrap}: "
                                   f"{exc}; start it or set KAFKA_BOOTSTRAP_SERVERS") from exc
        except BaseException:
            self._state = "closed"
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown()
        self._state = "closed"
        await self._exit.aclose()

    async def _bus_partitions(self) -> list[TopicPartition]:
        """Every bus partition (without a group, this runtime owns them all)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap,
                                    client_id="netscript-sagas-pg")
        await admin.start()
        try:
            [topic] = await admin.describe_topics([BUS])
        finally:
            await admin.close()
        return [TopicPartition(BUS, p["partition"]) for p in topic["partitions"]]

    def shutdown(self) -> None:
        """Ask :meth:`run` to finish the record in hand, drain the outbox and return
        (idempotent)."""
        self._stop.set()
        self._relay.wake()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume, fire timers and relay until :meth:`shutdown` or ``stop`` is set."""
        if self._state != "open":
            raise SagaRuntimeError("run a PostgresSagaRuntime once, inside its `async with` "
                                   "block")
        self._state = "running"
        relay_stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._relay.run(relay_stop))
                async with asyncio.TaskGroup() as writers:
                    if stop is not None:
                        writers.create_task(self._forward(stop))
                    writers.create_task(self._consume())
                    writers.create_task(self._fire_timers())
                    if any(d.schedule for d in self.engine.definitions.values()):
                        writers.create_task(self._cron())
                # The writers stopped: nothing new reaches the outbox; let the relay drain it.
                relay_stop.set()
                self._relay.wake()
        except BaseExceptionGroup as group_error:
            raise _first(group_error) from None

    async def _forward(self, stop: asyncio.Event) -> None:
        # Ends with the writers: either stop fired, or shutdown() did and we stop waiting.
        while not self._stop.is_set():
            await wait_or_timeout(stop, timeout=0.25)
            if stop.is_set():
                self.shutdown()

    async def _cron(self) -> None:
        """Publish the cron ticks of scheduled sagas (idempotent: every replica may)."""
        from services.kernel import create_producer
        from services.sagas._schedule import CronTicker

        ticker = CronTicker(self.engine, start=self._clock())
        producer = create_producer(Settings(service_name="netscript-sagas-pg",
                                            kafka_bootstrap_servers=self._bootstrap))
        await producer.start()
        try:
            while not self._stop.is_set():
                try:
                    for key, value in ticker.due(self._clock()):
                        await producer.send_and_wait(BUS, key=key.encode(),
                                                     value=json.dumps(value).encode())
                except KafkaError as exc:
                    log.warning("sagas: cannot publish cron ticks (%s); retrying", exc)
                await wait_or_timeout(self._stop, timeout=1.0)
        finally:
            await producer.stop()

    # -- the bus ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer, listener = self._consumer, self._listener
        assert consumer is not None
        assert listener is not None
        while not self._stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=200)
            except KafkaError as exc:
                raise SagaRuntimeError(f"lost the log at {self._bootstrap} while consuming "
                                       f"{BUS}: {exc}") from exc
            listener.check()
            for records in batches.values():
                for record in records:
                    if self._stop.is_set():
                        # Unapplied records are fetched again: their offset did not advance.
                        return
                    await self._apply_record(record)

    async def _apply_record(self, record: Any) -> None:
        with consume_span(record.topic, record.partition, record.offset, record.headers):
            await self._apply_in_transaction(record)

    async def _apply_in_transaction(self, record: Any) -> None:
        source = Source(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                if record.offset < await lock_offset(connection, source):
                    return  # applied before a crash or by the partition's previous owner
                try:
                    saga_id, message = self._decode(record)
                except _UNDECODABLE as error:
                    log.warning("sagas: bad record at %s-%d offset %d goes to %s: %s",
                                record.topic, record.partition, record.offset, DEAD_LETTER,
                                error)
                    await enqueue(connection, [dead_letter(record, error)])
                else:
                    with tracer().start_as_current_span(
                            f"saga {saga_id} {message.type}",
                            attributes={"saga.id": saga_id, "saga.message_type": message.type,
                                        "saga.correlation_key": message.correlation_key or ""}
                    ) as span:
                        step = await self._step(connection, saga_id, message, source)
                        span.set_attribute("saga.status", step.instance.status)
                    await write_step(connection, step)
                await connection.execute(
                    "update saga_runtime_offsets set next_offset = $3, updated_at = now() "
                    "where topic = $1 and partition = $2",
                    source.topic, source.partition, source.offset + 1)
        except POSTGRES_ERRORS as exc:
            raise SagaRuntimeError(f"cannot apply {source.topic}-{source.partition} offset "
                                   f"{source.offset}: {exc}; nothing of it was written") from exc
        self._relay.wake()

    def _decode(self, record: Any) -> tuple[str, SagaMessage]:
        if record.value is None:
            raise ValueError("a bus record needs a value")
        data = json.loads(record.value)
        saga_id = str(data["saga"])
        message = message_from_json(data["message"])
        definition = self.engine.definition(saga_id)
        correlation = message.correlation_key or definition.correlation_key(message)
        if not correlation:
            raise ValueError(f"the {message.type!r} message names no instance of {saga_id!r}")
        return saga_id, replace(message, correlation_key=correlation,
                                traceparent=message.traceparent
                                or traceparent_of(record.headers))

    async def _step(self, connection: Any, saga_id: str, message: SagaMessage,
                    source: Source) -> Step:
        correlation = message.correlation_key
        assert correlation is not None
        instance = await lock_instance(connection, saga_id, correlation, source.partition)
        now = self._clock()
        return await apply_with_retries(self.engine, instance, saga_id=saga_id,
                                        correlation_key=correlation, message=message, now=now,
                                        source=source)

    # -- timers -----------------------------------------------------------------------------

    async def _fire_timers(self) -> None:
        while not self._stop.is_set():
            try:
                await self._fire_due(self._clock())
            except POSTGRES_ERRORS as exc:
                raise SagaRuntimeError(f"cannot fire saga timers: {exc}") from exc
            await wait_or_timeout(self._stop, timeout=self._timer_interval)

    async def _fire_due(self, now: datetime) -> None:
        now_ms = int(now.timestamp() * 1000)
        # Only registered sagas: another deployment's instances in the same tables are not
        # ours to fire (and would fail the engine's lookup).
        due = await self._pool.fetch(
            "select saga_id, correlation_key from saga_runtime_state where next_due_ms <= $1 "
            "and saga_id = any($2::text[]) order by next_due_ms limit 100",
            now_ms, sorted(self.engine.definitions))
        for key in due:
            if self._stop.is_set():
                return
            async with self._pool.acquire() as connection, connection.transaction():
                # SKIP LOCKED: the bus (or another runtime's poll) holds it; next poll then.
                row = await connection.fetchrow(
                    f"select {INSTANCE_COLUMNS} from saga_runtime_state where saga_id = $1 "
                    "and correlation_key = $2 for update skip locked",
                    key["saga_id"], key["correlation_key"])
                if row is None:
                    continue
                step = await self._timer_step(instance_from_row(row), now)
                if step is None:
                    continue
                await write_step(connection, step)
            self._relay.wake()

    async def _timer_step(self, instance: SagaInstance, now: datetime) -> Step | None:
        retry = self.engine.definition(instance.saga_id).retry
        attempt = 1
        while True:
            try:
                return self.engine.fire_timers(instance, now=now, source=None)
            except SagaHandlerError as raised:
                if attempt >= retry.max_attempts:
                    error = raised
                    break
                await asyncio.sleep(retry.backoff_ms * 2 ** (attempt - 1) / 1000)
                attempt += 1
        now_ms = int(now.timestamp() * 1000)
        due = [t for t in instance.timers if t.due_ms <= now_ms]
        timer = next((t for t in due if t.message.type == error.message_type), due[0])
        log.warning("%s; the instance fails and the timer's message is dead-lettered", error)
        step = self.engine.fail(instance, saga_id=instance.saga_id,
                                correlation_key=instance.correlation_key, message=timer.message,
                                error=error, attempts=attempt, now=now, source=None)
        # The failing timer is spent (fail() keeps timers; a failed instance ignores them).
        step.instance = replace(step.instance,
                                timers=tuple(t for t in step.instance.timers if t != timer))
        return step


async def run_postgres_runtime(engine: SagaEngine, *, pool: asyncpg.Pool,
                               bootstrap_servers: str,
                               group_id: str | None = "netscript-sagas-pg",
                               stop: asyncio.Event | None = None, clock: Clock = utc_now,
                               **options: Any) -> None:
    """Run the ``postgres`` saga runtime until ``stop`` is set (forever without one).

    ``options`` go to :class:`PostgresSagaRuntime`. Raises :class:`SagaRuntimeError`.
    """
    async with PostgresSagaRuntime(engine, pool=pool, bootstrap_servers=bootstrap_servers,
                                   group_id=group_id, clock=clock, **options) as runtime:
        await runtime.run(stop)


async def _stop_consumer(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        # aiokafka's group-less coordinator re-raises the cancellation of its own helper task
        # when stopped before that task ran; only a cancellation of *this* task propagates.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue each partition from the offset Postgres committed.

    aiokafka logs and drops a listener's exception, so a failure is kept for :meth:`check`
    (the consume loop calls it) instead: the runtime stops rather than read from a guess.
    """

    def __init__(self, pool: asyncpg.Pool, consumer: AIOKafkaConsumer) -> None:
        self._pool = pool
        self._consumer = consumer
        self._error: SagaRuntimeError | None = None

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass  # the position lives in Postgres: nothing to commit

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        try:
            rows = await self._pool.fetch(
                "select partition, next_offset from saga_runtime_offsets where topic = $1 "
                "and partition = any($2::int[])", BUS, [tp.partition for tp in assigned])
        except POSTGRES_ERRORS as exc:
            self._error = SagaRuntimeError(f"cannot read the stored bus offsets: {exc}")
            self._error.__cause__ = exc
            return
        consumer = self._consumer
        stored = {r["partition"]: int(r["next_offset"]) for r in rows}
        fresh = []
        for tp in assigned:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                fresh.append(tp)
        if fresh:
            await consumer.seek_to_beginning(*fresh)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf error of ``group`` (the TaskGroups nest): what made the runtime stop."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error

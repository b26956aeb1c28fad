"""The ``kv`` saga runtime: a faust-streaming processor with exactly-once on the log.

One agent consumes the bus (and the co-partitioned ticks topic). For each record it loads the
instance from the ``instances`` table, lets the :class:`SagaEngine` apply the message, and
writes the new instance (to the table, whose compacted changelog is the store), the
transitions and the effect records — all sent in the Kafka transaction that also commits the
record's offset (faust ``exactly_once`` plus NetScript's fixes in ``services.processing``).
A ``kill -9`` at any moment aborts the open transaction; the restarted processor rebuilds the
table from its changelog and re-applies the aborted records, which yields the same steps.

Nothing in an event awaits after its first write, so all of an event's records land in one
transaction (see ``services.processing._faust_fixes``). The records (changelog included, via
:class:`~services.processing.ChangelogTable`) go out through :func:`~services.processing.emit`,
which queues them already serialized for the event's own transaction instead of through
faust's per-record send layers — the same gated buffer, so the same commit argument, at a
fraction of the cost. The handler's clock is the record's log timestamp, so a replay also sees
the same ``now``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import EventT

from services.kernel import Settings, create_producer, ensure_topics, partition_counts
from services.kernel._health import health_app
from services.kernel._tracing import consume_span, traceparent_of, tracer
from services.processing import (
    ChangelogTable,
    ProcessorApp,
    ReplayGuard,
    emit,
    processor_app,
)
from services.sagas._engine import SagaEngine, Step
from services.sagas._errors import SagaError
from services.sagas._records import (
    SagaInstance,
    Source,
    instance_key,
    message_from_json,
)
from services.sagas._retrying import apply_with_retries
from services.sagas._schedule import CronTicker
from services.sagas._topics import (
    BUS,
    COMMANDS,
    DEAD_LETTER,
    DEFAULT_PARTITIONS,
    INSTANCES_TABLE,
    PROCESSOR_ID,
    TICKS,
    TRANSITIONS,
    topic_configs,
)

log = logging.getLogger("netscript.sagas")

_OUTPUT_TOPICS = {"bus": BUS, "command": COMMANDS, "dead_letter": DEAD_LETTER}


class SagaProcessor:
    """The processor's state: the engine, the faust app and table, the timer index."""

    def __init__(self, engine: SagaEngine, *, bootstrap_servers: str,
                 partitions: int = DEFAULT_PARTITIONS, data_dir: Path | str = ".netscript/sagas",
                 tick_interval: float = 1.0, commit_interval: float = 0.1,
                 session_timeout: float = 10.0, health_port: int | None = None,
                 health_host: str = "127.0.0.1") -> None:
        self.engine = engine
        # faust keeps only scratch files there (the table lives in its changelog).
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self.tick_interval = tick_interval
        self.app: ProcessorApp = processor_app(
            PROCESSOR_ID, bootstrap_servers=bootstrap_servers, guarantee="exactly_once",
            store="memory://", topic_partitions=partitions, datadir=str(data_dir),
            consumer_auto_offset_reset="earliest", broker_commit_interval=commit_interval,
            broker_commit_every=1000, broker_session_timeout=session_timeout,
            broker_heartbeat_interval=1, table_standby_replicas=0,
            # Batch produce requests (seconds, not ms): each request of a transactional
            # producer waits for an fsync on the log, so tiny requests starve it.
            producer_linger=0.005, producer_max_batch_size=1024 * 1024,
            web_enabled=health_port is not None,
        )
        if health_port is not None:
            from faust.contrib.asgi import serve_asgi

            # faust starts it once the table is recovered: answering means ready.
            serve_asgi(self.app, health_app("sagas-runtime"), host=health_host,
                       port=health_port, log_level="warning")
        self._inbound = self.app.topic(BUS, TICKS, key_serializer="raw",
                                       value_serializer="raw", partitions=partitions)
        self.instances: ChangelogTable = ChangelogTable(
            self.app, name=INSTANCES_TABLE, partitions=partitions, beacon=self.app.tables.beacon,
            schema=faust.Schema(key_serializer="json", value_serializer="json"))
        self.app.tables.add(self.instances)
        self._due: dict[int, dict[str, int]] = {}
        self._replays = ReplayGuard(self.app)
        self.app.agent(self._inbound, name="sagas")(self._consume)
        self.app.on_partitions_revoked.connect(self._forget_timers)
        self.app.on_partitions_assigned.connect(self._forget_timers)
        # faust starts a Service instance as well as a class (App._prepare_subservice).
        self.app.service(_Ticker(self))  # type: ignore[arg-type]

    # -- the agent --------------------------------------------------------------------------

    async def _consume(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            if not self._replays.first_time(event):
                continue
            try:
                await self.handle(event)
            except Exception as exc:
                # A bug of ours, not of the record: stop the worker (the record is not
                # committed, so a restart retries it) rather than skip it or limp on.
                log.exception("sagas processor failed on %s; stopping", event.message.tp)
                await self.app.crash(exc)
                raise

    async def handle(self, event: EventT[Any]) -> None:
        """Apply one bus record (or tick) — see the module docstring."""
        message = event.message
        source = Source(topic=message.topic, partition=message.partition, offset=message.offset)
        now = datetime.fromtimestamp(message.timestamp, UTC)
        if message.topic == TICKS:
            self._fire_timers(event, source, now)
            return
        try:
            saga_id, saga_message, key = self._decode(message.key, message.value)
        except (ValueError, KeyError, TypeError, SagaError) as exc:
            self._dead_letter(event, exc)
            return
        headers = cast(list[tuple[str, bytes]], list(message.headers or ()))
        if saga_message.traceparent is None:
            saga_message = replace(saga_message, traceparent=traceparent_of(headers))
        with consume_span(message.topic, message.partition, message.offset, headers), \
                tracer().start_as_current_span(
                    f"saga {saga_id} {saga_message.type}",
                    attributes={"saga.id": saga_id, "saga.message_type": saga_message.type,
                                "saga.correlation_key": key}) as span:
            step = await self._apply(saga_id, saga_message, key, source, now)
            span.set_attribute("saga.status", step.instance.status)
            self._write(event, step)

    async def _apply(self, saga_id: str, message: Any, key: str, source: Source,
                     now: datetime) -> Step:
        record = self.instances.get(key)
        instance = SagaInstance.from_json(record) if record else None
        return await apply_with_retries(self.engine, instance, saga_id=saga_id,
                                        correlation_key=message.correlation_key,
                                        message=message, now=now, source=source)

    def _decode(self, key: bytes | None, value: bytes | None) -> tuple[str, Any, str]:
        if value is None:
            raise ValueError("a bus record needs a value")
        data = json.loads(value)
        saga_id = str(data["saga"])
        message = message_from_json(data["message"])
        definition = self.engine.definition(saga_id)
        correlation = message.correlation_key or definition.correlation_key(message)
        if not correlation:
            raise ValueError(f"the {message.type!r} message names no instance of {saga_id!r}")
        message = replace(message, correlation_key=correlation)
        return saga_id, message, instance_key(saga_id, correlation)

    # -- writing a step (no awaits: one transaction) ----------------------------------------

    def _write(self, event: EventT[Any], step: Step) -> None:
        instance = step.instance
        self.instances[instance.key] = instance.to_json()
        self._index(instance)
        key = instance.key.encode()
        for transition in step.transitions:
            emit(event, TRANSITIONS, key=key, value=json.dumps(transition.to_json()).encode())
        for output in step.outputs:
            emit(event, _OUTPUT_TOPICS[output.kind], key=output.key.encode(),
                 value=json.dumps(output.value).encode(),
                 headers=[(k, v.encode()) for k, v in output.headers.items()])

    def _dead_letter(self, event: EventT[Any], error: BaseException) -> None:
        message = event.message
        log.warning("sagas: bad record at %s offset %d: %s", message.tp, message.offset, error)
        headers = [*(message.headers or []),
                   ("x-error-type", type(error).__name__.encode()),
                   ("x-error-message", str(error).encode()[:4096]),
                   ("x-original-topic", message.topic.encode()),
                   ("x-original-partition", str(message.partition).encode()),
                   ("x-original-offset", str(message.offset).encode())]
        emit(event, DEAD_LETTER, key=message.key, value=message.value, headers=headers)

    # -- timers -----------------------------------------------------------------------------

    def _index(self, instance: SagaInstance) -> None:
        if instance.partition is None:
            return
        due = self._due.setdefault(instance.partition, {})
        if instance.timers:
            due[instance.key] = min(t.due_ms for t in instance.timers)
        else:
            due.pop(instance.key, None)

    def _fire_timers(self, event: EventT[Any], source: Source, now: datetime) -> None:
        partition = source.partition
        if partition not in self._due:
            # After (re)assignment the table was recovered: index this partition's timers.
            self._due[partition] = {}
            for record in self.instances.values():
                if record.get("partition") == partition and record.get("timers"):
                    self._index(SagaInstance.from_json(record))
        now_ms = int(now.timestamp() * 1000)
        for key in [k for k, due in self._due[partition].items() if due <= now_ms]:
            record = self.instances.get(key)
            if not record:
                self._due[partition].pop(key, None)
                continue
            step = self.engine.fire_timers(SagaInstance.from_json(record), now=now,
                                           source=source)
            if step is not None:
                self._write(event, step)

    async def _forget_timers(self, *args: Any, **kwargs: Any) -> None:
        self._due.clear()

    # -- running ----------------------------------------------------------------------------

    async def ensure_topics(self) -> None:
        """Create the runtime's topics (the bus, ticks, changelog, …) if they are missing.

        Raises :class:`SagaError` when the bus exists with another partition count: the
        instance table is co-partitioned with it, so the count is fixed once chosen.
        """
        await ensure_topics(self.bootstrap_servers, topic_configs(self.partitions))
        counts = await partition_counts(self.bootstrap_servers, (BUS, TICKS))
        for topic, count in counts.items():
            if count != self.partitions:
                raise SagaError(
                    f"{topic} has {count} partitions but the runtime runs with "
                    f"{self.partitions}; start it with --partitions {count} (the instance "
                    "table is co-partitioned with the bus, so the count is fixed once chosen)")


class _Ticker(faust.Service):
    """Sends a tick to every ticks partition each ``tick_interval`` (timers fire on them) and
    publishes the cron ticks of scheduled sagas. Ticks are idempotent, so every replica sends
    them on its own, outside any transaction."""

    def __init__(self, processor: SagaProcessor, **kwargs: Any) -> None:
        self.processor = processor
        self.cron = CronTicker(processor.engine)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        settings = Settings(service_name="sagas-processor",
                            kafka_bootstrap_servers=self.processor.bootstrap_servers)
        self._producer = create_producer(settings)
        await self._producer.start()
        self.add_future(self._run())

    async def on_stop(self) -> None:
        await self._producer.stop()

    async def _run(self) -> None:
        processor = self.processor
        while not self.should_stop:
            try:
                for partition in range(processor.partitions):
                    await self._producer.send(TICKS, value=b"{}", partition=partition)
                for key, value in self.cron.due(datetime.now(UTC)):
                    await self._producer.send(BUS, key=key.encode(),
                                              value=json.dumps(value).encode())
            except Exception as exc:  # the log is away: tick again next interval
                log.warning("sagas: cannot send ticks (%s); retrying", exc)
            await self.sleep(processor.tick_interval)


def run_processor(processor: SagaProcessor, *, loglevel: str = "warning",
                  argv_hook: Callable[[], None] | None = None) -> None:
    """Run the processor's faust worker in this process until it is stopped."""
    asyncio.run(processor.ensure_topics())
    worker = faust.Worker(processor.app, loglevel=loglevel, redirect_stdouts=False,
                          override_logging=False)
    worker.execute_from_commandline()

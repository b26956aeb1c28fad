"""The dispatcher: a faust-streaming processor that owns every lease, exactly once.

One agent consumes the lanes, the pools' reports, the operators' commands and its own clock
ticks — all single-partition topics, so one active dispatcher sees every credit (a standby
replica takes over on a rebalance). For each record it lets the :class:`DispatchEngine`
decide, then writes the outcome — the executions and pools tables (whose compacted changelogs
are the store), the assignments and revocations for the pools, the dead letters — with
:func:`~services.processing.emit` into the Kafka transaction that commits the record's offset.
A ``kill -9`` at any moment aborts that transaction: no pool ever sees its assignments (pools
read committed records only), and the restarted dispatcher rebuilds its tables from their
changelogs and decides again. The engine's clock is the wall clock (see ``_engine``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import EventT

from services.kernel import Settings, create_producer, ensure_topics
from services.kernel._health import health_app
from services.kernel._tracing import consume_span, tracer
from services.processing import (
    ChangelogTable,
    ProcessorApp,
    ReplayGuard,
    emit,
    processor_app,
)
from services.workers._engine import DispatchEngine, Outcome
from services.workers._records import (
    Command,
    Execution,
    PoolState,
    report_from_json,
    requests_from_json,
)
from services.workers._topics import (
    ASSIGNMENT_PARTITIONS,
    ASSIGNMENTS,
    COMMANDS,
    DEAD_LETTER,
    DISPATCHER_ID,
    EXECUTIONS_TABLE,
    NORMAL,
    POOLS_TABLE,
    REPORTS,
    TICKS,
    URGENT,
    assignment_partition,
    topic_configs,
)

log = logging.getLogger("netscript.workers.dispatcher")

DEFAULT_DATA_DIR = ".netscript/workers"


class Dispatcher:
    """The processor's state: the engine, the faust app and its two tables."""

    def __init__(self, *, bootstrap_servers: str, data_dir: Path | str = DEFAULT_DATA_DIR,
                 tick_interval: float = 0.5, commit_interval: float = 0.01,
                 session_timeout: float = 6.0, health_port: int | None = None,
                 health_host: str = "127.0.0.1") -> None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.bootstrap_servers = bootstrap_servers
        self.tick_interval = tick_interval
        self.engine = DispatchEngine()
        self._loaded = False
        self.app: ProcessorApp = processor_app(
            DISPATCHER_ID, bootstrap_servers=bootstrap_servers, guarantee="exactly_once",
            store="memory://", topic_partitions=1, datadir=str(data_dir),
            consumer_auto_offset_reset="earliest", broker_commit_interval=commit_interval,
            broker_commit_every=1000, broker_session_timeout=session_timeout,
            broker_heartbeat_interval=1, table_standby_replicas=0,
            producer_linger=0.002, producer_max_batch_size=1024 * 1024,
            web_enabled=health_port is not None,
        )
        if health_port is not None:
            from faust.contrib.asgi import serve_asgi

            # faust starts it once the tables are recovered: answering means ready.
            serve_asgi(self.app, health_app("workers-dispatcher"), host=health_host,
                       port=health_port, log_level="warning")
        self._inbound = self.app.topic(URGENT, NORMAL, REPORTS, COMMANDS, TICKS,
                                       key_serializer="raw", value_serializer="raw",
                                       partitions=1)
        schema: faust.Schema[Any, Any] = faust.Schema(key_serializer="json",
                                                      value_serializer="json")
        self.executions: ChangelogTable = ChangelogTable(
            self.app, name=EXECUTIONS_TABLE, partitions=1, beacon=self.app.tables.beacon,
            schema=schema)
        self.pools: ChangelogTable = ChangelogTable(
            self.app, name=POOLS_TABLE, partitions=1, beacon=self.app.tables.beacon,
            schema=schema)
        self.app.tables.add(self.executions)
        self.app.tables.add(self.pools)
        self._replays = ReplayGuard(self.app)
        self.app.agent(self._inbound, name="dispatch")(self._consume)
        self.app.on_partitions_revoked.connect(self._forget)
        self.app.on_partitions_assigned.connect(self._forget)
        # faust starts a Service instance as well as a class (App._prepare_subservice).
        self.app.service(_Ticker(self))  # type: ignore[arg-type]

    # -- the agent --------------------------------------------------------------------------

    async def _consume(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            if not self._replays.first_time(event):
                continue
            try:
                self.handle(event)
            except Exception as exc:
                # A bug of ours, not of the record: stop (the record is not committed, so a
                # restart retries it) rather than skip it or limp on with half a decision.
                log.exception("workers dispatcher failed on %s; stopping", event.message.tp)
                await self.app.crash(exc)
                raise

    def handle(self, event: EventT[Any]) -> None:
        """Decide on one record and write the outcome (no awaits: one transaction)."""
        if not self._loaded:
            self.engine.load((Execution.from_json(v) for v in self.executions.values()),
                             (PoolState.from_json(v) for v in self.pools.values()))
            self._loaded = True
        message = event.message
        sent_at = int(message.timestamp * 1000)
        now = max(int(time.time() * 1000), sent_at)
        topic = message.topic
        if topic == TICKS:
            self.engine.tick(now=now)
            self._write(event, self.engine.drain())
            return
        try:
            if message.value is None:
                raise ValueError("a record without a value")
            value = json.loads(message.value)
            if not isinstance(value, dict):
                raise ValueError("a record's value must be a JSON object")
            if topic in (NORMAL, URGENT):
                requests = requests_from_json(value)
                headers = cast(list[tuple[str, bytes]], list(message.headers or ()))
                with consume_span(topic, message.partition, message.offset, headers), \
                        tracer().start_as_current_span(
                            "dispatch", attributes={"job.requests": len(requests)}):
                    for request in requests:
                        self.engine.request(request, now=now)
            elif topic == REPORTS:
                pool, events = report_from_json(value)
                self.engine.report(pool, events, now=now, sent_at=sent_at)
            else:
                self.engine.command(Command.from_json(value), now=now)
        except (ValueError, KeyError, TypeError) as exc:
            self.engine.drain()  # nothing of a bad record is applied
            self._dead_letter(event, exc)
            return
        self._write(event, self.engine.drain())

    def _write(self, event: EventT[Any], out: Outcome) -> None:
        for execution_id, execution in out.executions.items():
            self.executions[execution_id] = execution.to_json()
        for pool_id, pool in out.pools.items():
            self.pools[pool_id] = pool.to_json()
        for assignment in out.assignments:
            self._to_pool(event, assignment.lease.pool, assignment.to_json())
        for revocation in out.revocations:
            self._to_pool(event, revocation.pool, revocation.to_json())
        for execution in out.dead_letters:
            emit(event, DEAD_LETTER, key=execution.execution_id.encode(),
                 value=json.dumps(execution.to_json()).encode(),
                 headers=[("x-error-type", b"AttemptsExhausted"),
                          ("x-error-message", (execution.error or "").encode()[:4096]),
                          ("x-execution-id", execution.execution_id.encode()),
                          ("x-job-id", execution.job_id.encode()),
                          ("x-attempts", str(execution.attempt).encode())])
        for execution_id, token, why in out.rejected:
            log.info("workers: rejected the result of %s lease %d: %s", execution_id, token, why)

    def _to_pool(self, event: EventT[Any], pool: str, value: dict[str, Any]) -> None:
        emit(event, ASSIGNMENTS, key=pool.encode(), value=json.dumps(value).encode(),
             partition=assignment_partition(pool, ASSIGNMENT_PARTITIONS))

    def _dead_letter(self, event: EventT[Any], error: BaseException) -> None:
        message = event.message
        log.warning("workers: bad record at %s offset %d: %s", message.tp, message.offset, error)
        headers = [*(message.headers or []),
                   ("x-error-type", type(error).__name__.encode()),
                   ("x-error-message", str(error).encode()[:4096]),
                   ("x-original-topic", message.topic.encode()),
                   ("x-original-partition", str(message.partition).encode()),
                   ("x-original-offset", str(message.offset).encode())]
        emit(event, DEAD_LETTER, key=message.key, value=message.value, headers=headers)

    async def _forget(self, *args: Any, **kwargs: Any) -> None:
        # Assignment changed: the tables are (re)recovered; rebuild the indexes from them.
        self._loaded = False

    async def ensure_topics(self) -> None:
        """Create the workers' topics if they are missing."""
        await ensure_topics(self.bootstrap_servers, topic_configs())


class _Ticker(faust.Service):
    """Sends a tick each ``tick_interval``: leases expire, backoffs end and stuck executions
    are flagged on them. Ticks only carry time, so every replica sends them on its own."""

    def __init__(self, dispatcher: Dispatcher, **kwargs: Any) -> None:
        self.dispatcher = dispatcher
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        settings = Settings(service_name="workers-dispatcher",
                            kafka_bootstrap_servers=self.dispatcher.bootstrap_servers)
        self._producer = create_producer(settings)
        await self._producer.start()
        self.add_future(self._run())

    async def on_stop(self) -> None:
        await self._producer.stop()

    async def _run(self) -> None:
        while not self.should_stop:
            try:
                await self._producer.send(TICKS, value=b"{}", partition=0)
            except Exception as exc:  # the log is away: tick again next interval
                log.warning("workers: cannot send a tick (%s); retrying", exc)
            await self.sleep(self.dispatcher.tick_interval)


def run_dispatcher(bootstrap_servers: str, *, health_port: int | None = None,
                   health_host: str = "127.0.0.1", data_dir: Path | str = DEFAULT_DATA_DIR,
                   tick_interval: float = 0.5, commit_interval: float = 0.01,
                   loglevel: str = "warning") -> None:
    """Run the dispatcher in this process until it is stopped (SIGTERM/SIGINT)."""
    dispatcher = Dispatcher(bootstrap_servers=bootstrap_servers, data_dir=data_dir,
                            tick_interval=tick_interval, commit_interval=commit_interval,
                            health_port=health_port,
                            health_host=health_host)
    asyncio.run(dispatcher.ensure_topics())
    worker = faust.Worker(dispatcher.app, loglevel=loglevel, redirect_stdouts=False,
                          override_logging=False)
    worker.execute_from_commandline()

"""The ``postgres`` saga store and runtime on the real Postgres and a log of each test's own:
migrations, outcomes, parking, timers, bad input, the store's reads, backend selection, and
``kill -9`` of the runtime mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerFenced

from services.kernel import ensure_topics
from services.log.testing import BrokerProcess
from services.sagas import (
    Saga,
    SagaContext,
    SagaMessage,
    Target,
    define_saga,
    schedule,
    send,
)
from services.sagas._backend import resolve_saga_store_backend
from services.sagas._definition import SagaDefinition
from services.sagas._effects import Effect
from services.sagas._engine import SagaEngine
from services.sagas._errors import SagaStoreConfigError
from services.sagas._migrations import apply_migrations
from services.sagas._outbox import OutboxRecord, OutboxRelay, enqueue
from services.sagas._postgres_runner import PostgresSagaRuntime
from services.sagas._postgres_store import PostgresSagaStore
from services.sagas._postgres_writes import write_step
from services.sagas._records import (
    SagaInstance,
    Source,
    Transition,
    bus_value,
    instance_key,
    message_to_json,
)
from services.sagas._runtime import create_durable_saga_runtime
from services.sagas._topics import BUS, COMMANDS, DEAD_LETTER, TRANSITIONS, topic_configs
from services.sagas.examples import EXAMPLES
from tests.log._poll import eventually
from tests.sagas._support import read_topic, running

ROOT = Path(__file__).parents[2]
PARTITIONS = 2
TABLES = {"saga_runtime_state", "saga_runtime_transition", "saga_runtime_correlation",
          "saga_runtime_offsets", "saga_runtime_outbox", "saga_runtime_relay",
          "saga_runtime_migrations"}


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[str]:
    """A log of this test's own (the saga topics have fixed names), topics created."""
    with BrokerProcess(tmp_path / "log") as broker:
        await ensure_topics(broker.bootstrap_servers, topic_configs(PARTITIONS))
        yield broker.bootstrap_servers


# -- helpers ------------------------------------------------------------------------------------

def bus_record(saga_id: str, message: SagaMessage) -> tuple[bytes | None, bytes | None]:
    """A bus record the way the sagas API writes one."""
    assert message.correlation_key is not None
    return (instance_key(saga_id, message.correlation_key).encode(),
            json.dumps(bus_value(saga_id, message)).encode())


async def publish(log: str, records: Sequence[tuple[bytes | None, bytes | None]]
                  ) -> list[tuple[int, int]]:
    """Put ``records`` on the bus in order; returns each one's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=log, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(BUS, key=key, value=value) for key, value in records]
        placed = [await f for f in futures]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in placed]


async def all_applied(store: PostgresSagaStore, placed: Sequence[tuple[int, int]]) -> bool:
    last: dict[int, int] = {}
    for partition, offset in placed:
        last[partition] = max(offset, last.get(partition, -1))
    return all([await store.applied(p, o) for p, o in last.items()])


async def outbox_drained(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("select count(*) = 0 from saga_runtime_outbox "
                                    "where not emitted"))


def order(order_id: str, kind: str, **payload: Any) -> SagaMessage:
    return SagaMessage(type=kind, payload={"orderId": order_id, **payload},
                       correlation_key=order_id)


def header(record: Any, name: str) -> str | None:
    return next((v.decode() for k, v in record.headers or () if k == name), None)


def events(history: Sequence[Transition]) -> list[tuple[str, str | None, str]]:
    return [(t.event, t.message_type, t.to_status) for t in history]


# -- migrations ---------------------------------------------------------------------------------

async def test_migrations_apply_once_even_when_two_runtimes_race(database_url: str) -> None:
    """Two concurrent apply_migrations create the tables once; a third run applies nothing."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as one, \
            asyncpg.create_pool(database_url, min_size=1, max_size=2) as two:
        results = await asyncio.gather(apply_migrations(one), apply_migrations(two))
        assert sorted(results) == [[], ["0001_saga_runtime.sql"]]
        assert await apply_migrations(one) == []
        tables = {r["table_name"] for r in await one.fetch(
            "select table_name from information_schema.tables "
            "where table_schema = current_schema()")}
    assert tables >= TABLES


# -- the store's reads --------------------------------------------------------------------------

async def test_store_lists_newest_first_pages_and_hides_pending(pool: asyncpg.Pool) -> None:
    """list() filters, pages newest first, hides pending; get/history/applied read the rows."""
    await apply_migrations(pool)
    engine = SagaEngine(EXAMPLES)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    messages = [order("o-1", "OrderPlaced"), order("o-2", "OrderPlaced"),
                order("o-3", "PaymentCaptured", paymentId="p-3"),  # parked: o-3 stays pending
                order("o-1", "PaymentCaptured", paymentId="p-1"),
                order("o-1", "OrderFulfilled")]
    instances: dict[str, SagaInstance] = {}
    async with pool.acquire() as connection:
        for offset, message in enumerate(messages):
            assert message.correlation_key is not None
            step = engine.apply(instances.get(message.correlation_key), saga_id="order-saga",
                                correlation_key=message.correlation_key, message=message,
                                now=start + timedelta(seconds=offset),
                                source=Source(topic=BUS, partition=0, offset=offset))
            instances[message.correlation_key] = step.instance
            async with connection.transaction():
                await write_step(connection, step)
        await connection.execute("insert into saga_runtime_offsets values ($1, 0, 5)", BUS)
    async with PostgresSagaStore(pool) as store:
        page = await store.list()
        assert [i.correlation_key for i in page.items] == ["o-1", "o-2"]
        assert page.total == 2
        second = await store.list(saga_id="order-saga", offset=1, limit=1)
        assert [i.correlation_key for i in second.items] == ["o-2"]
        assert second.total == 2
        pending = await store.list(status="pending")
        assert [(i.correlation_key, len(i.parked)) for i in pending.items] == [("o-3", 1)]
        assert (await store.list(status="completed")).total == 1
        assert (await store.list(saga_id="user-settings-saga")).total == 0
        assert await store.get("order-saga", "o-1") == instances["o-1"]
        assert await store.get("order-saga", "nope") is None
        history = await store.history("order-saga", "o-1")
        assert [t.event for t in history] == ["saga:started", "saga:state_changed",
                                              "saga:completed"]
        assert history[0].source == Source(topic=BUS, partition=0, offset=0)
        assert await store.applied(0, 4)
        assert not await store.applied(0, 5)
        assert not await store.applied(1, 0)


# -- the runtime --------------------------------------------------------------------------------

async def test_order_saga_completes_and_compensates_with_commands_once(
        pool: asyncpg.Pool, log: str) -> None:
    """Orders complete or compensate, transitions in order, each command emitted once."""
    engine = SagaEngine(EXAMPLES)
    messages = [order("ok", "OrderPlaced"), order("bad", "OrderPlaced"),
                order("ok", "PaymentCaptured", paymentId="p-ok"),
                order("bad", "PaymentCaptured", paymentId="p-bad"),
                order("ok", "OrderFulfilled"),
                order("bad", "FulfillmentFailed", reason="out of stock")]
    async with running(engine, pool, log, group_id="pg-happy") as runtime:
        placed = await publish(log, [bus_record("order-saga", m) for m in messages])
        async with PostgresSagaStore(pool) as store:
            await eventually(lambda: all_applied(store, placed), timeout=20,
                             what="the runtime to apply every message")
            ok = await store.get("order-saga", "ok")
            bad = await store.get("order-saga", "bad")
            assert ok is not None
            assert ok.status == "completed"
            assert ok.result == {"orderId": "ok", "paymentId": "p-ok"}
            assert bad is not None
            assert bad.status == "failed"
            assert bad.state["status"] == "refunded"
            assert events(await store.history("order-saga", "ok")) == [
                ("saga:started", "OrderPlaced", "running"),
                ("saga:state_changed", "PaymentCaptured", "running"),
                ("saga:completed", "OrderFulfilled", "completed")]
            assert events(await store.history("order-saga", "bad")) == [
                ("saga:started", "OrderPlaced", "running"),
                ("saga:state_changed", "PaymentCaptured", "running"),
                ("saga:compensating", "FulfillmentFailed", "compensating"),
                ("saga:failed", "FulfillmentFailed", "failed")]
        await eventually(lambda: outbox_drained(pool), what="the outbox to drain")
        assert runtime.engine is engine
    commands = await read_topic(log, COMMANDS)
    keys = Counter(header(r, "idempotency-key") for r in commands)
    assert keys == {"charge:ok": 1, "charge:bad": 1, "refund:bad": 1}
    assert all(header(r, "x-outbox-id") for r in commands)
    transitions = await read_topic(log, TRANSITIONS)
    assert len(transitions) == 7


async def test_payment_before_order_is_parked_then_completes(pool: asyncpg.Pool, log: str
                                                             ) -> None:
    """PaymentCaptured before OrderPlaced waits (pending, parked); the order then completes."""
    engine = SagaEngine(EXAMPLES)
    async with running(engine, pool, log), PostgresSagaStore(pool) as store:
        first = await publish(log, [bus_record("order-saga", order(
            "late", "PaymentCaptured", paymentId="p-late"))])
        await eventually(lambda: all_applied(store, first), what="the payment to be applied")
        parked = await store.get("order-saga", "late")
        assert parked is not None
        assert parked.status == "pending"
        assert len(parked.parked) == 1
        assert (await store.list()).total == 0
        rest = await publish(log, [bus_record("order-saga", order("late", "OrderPlaced")),
                                   bus_record("order-saga", order("late", "OrderFulfilled"))])
        await eventually(lambda: all_applied(store, rest), what="the order to be applied")
        done = await store.get("order-saga", "late")
        assert done is not None
        assert done.status == "completed"
        assert done.result == {"orderId": "late", "paymentId": "p-late"}
        assert [t.event for t in await store.history("order-saga", "late")] == [
            "saga:parked", "saga:started", "saga:state_changed", "saga:completed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReminderState:
    reminders: int = 0


def _start(saga: Saga[ReminderState], event: SagaMessage, context: SagaContext
           ) -> Sequence[Effect]:
    return [schedule({"type": "Remind"}, 200)]


def _remind(saga: Saga[ReminderState], event: SagaMessage, context: SagaContext
            ) -> Sequence[Effect]:
    saga.state = replace(saga.state, reminders=saga.state.reminders + 1)
    return [send(Target(kind="service", id="mailer"), {"to": context.correlation_key})]


reminder_saga: SagaDefinition[ReminderState] = (
    define_saga("reminder-saga").correlate("id").state(ReminderState())
    .on("Start", _start, starts=True).on("Remind", _remind).build())


async def test_a_scheduled_message_fires_once(pool: asyncpg.Pool, log: str) -> None:
    """A message scheduled 200 ms ahead is delivered once, and its timer is gone after."""
    engine = SagaEngine([reminder_saga])
    async with running(engine, pool, log, timer_interval=0.05), \
            PostgresSagaStore(pool) as store:
        sent = datetime.now(UTC)
        await publish(log, [bus_record("reminder-saga", SagaMessage(
            type="Start", payload={"id": "r-1"}, correlation_key="r-1"))])

        async def reminded() -> bool:
            instance = await store.get("reminder-saga", "r-1")
            return instance is not None and instance.state["reminders"] > 0

        await eventually(reminded, timeout=20, what="the reminder to fire")
        instance = await store.get("reminder-saga", "r-1")
        assert instance is not None
        assert instance.state == {"reminders": 1}
        assert instance.timers == ()
        assert datetime.fromisoformat(instance.updated_at or "") >= sent + timedelta(
            milliseconds=200)
        assert await pool.fetchval("select next_due_ms from saga_runtime_state") is None
        history = await store.history("reminder-saga", "r-1")
        assert [(t.event, t.message_type) for t in history] == [
            ("saga:started", "Start"), ("saga:state_changed", "Remind")]
        assert history[1].source is None
        await eventually(lambda: outbox_drained(pool), what="the outbox to drain")
    assert [json.loads(r.value)["payload"] for r in await read_topic(log, COMMANDS)] == [
        {"to": "r-1"}]


def _explode(saga: Saga[ReminderState], event: SagaMessage, context: SagaContext
             ) -> Sequence[Effect]:
    raise RuntimeError(f"attempt {context.attempt} failed")


fragile_saga: SagaDefinition[ReminderState] = (
    define_saga("fragile-saga").correlate("id").retry(max_attempts=2, backoff_ms=10)
    .state(ReminderState()).on("Start", _explode).build())


async def test_bad_records_are_dead_lettered_and_the_next_one_still_applies(
        pool: asyncpg.Pool, log: str) -> None:
    """Bad JSON, unknown sagas and exhausted retries reach the DLQ; later records still apply."""
    engine = SagaEngine([*EXAMPLES, fragile_saga])
    records = [
        (b"order-saga/x", b"{not json"),
        (b"nobody/x", json.dumps({"saga": "nobody", "message": {"type": "Hi"}}).encode()),
        bus_record("fragile-saga", SagaMessage(type="Start", payload={"id": "f-1"},
                                               correlation_key="f-1")),
        bus_record("order-saga", order("after", "OrderPlaced")),
    ]
    async with running(engine, pool, log), PostgresSagaStore(pool) as store:
        placed = await publish(log, records)
        await eventually(lambda: all_applied(store, placed), timeout=20,
                         what="every record to be consumed")
        after = await store.get("order-saga", "after")
        assert after is not None
        assert after.status == "running"
        fragile = await store.get("fragile-saga", "f-1")
        assert fragile is not None
        assert fragile.status == "failed"
        assert fragile.error == ("saga 'fragile-saga': the 'Start' handler raised RuntimeError: "
                                 "attempt 2 failed (after 2 attempts)")
        await eventually(lambda: outbox_drained(pool), what="the outbox to drain")
    dead = await read_topic(log, DEAD_LETTER)
    assert [(r.key, header(r, "x-error-type")) for r in dead] == [
        (b"order-saga/x", "JSONDecodeError"), (b"nobody/x", "UnknownSagaError"),
        (b"fragile-saga/f-1", "RuntimeError")]
    assert dead[0].value == b"{not json"
    assert header(dead[0], "x-original-offset") == str(placed[0][1])
    assert "registered: fragile-saga, order-saga" in (header(dead[1], "x-error-message") or "")
    assert header(dead[2], "x-error-attempts") == "2"


# -- the outbox relay ---------------------------------------------------------------------------

async def outbox_commands(pool: asyncpg.Pool, count: int, first: int = 0) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await enqueue(connection, [
            OutboxRecord(topic=COMMANDS, key=b"svc", value=str(i).encode(),
                         headers=(("idempotency-key", f"k-{i}"),))
            for i in range(first, first + count)])


async def test_the_relay_recovers_both_crash_windows_without_duplicates(
        pool: asyncpg.Pool, log: str) -> None:
    """Committed-but-unmarked batches are marked, fenced open ones resent: each row lands once."""
    await apply_migrations(pool)
    drained = asyncio.Event()
    drained.set()  # run() emits what is there, then returns
    await outbox_commands(pool, 3)
    async with OutboxRelay(pool, bootstrap_servers=log) as relay:
        await relay.run(drained)
    # The crash between the Kafka commit and the Postgres mark leaves exactly this state.
    await pool.execute("update saga_runtime_outbox set emitted = false, emitted_at = null")

    # A relay that claimed the next rows, sent them, and died before committing.
    await outbox_commands(pool, 3, first=3)
    claimed = await pool.fetch(
        "update saga_runtime_outbox set batch = nextval('saga_runtime_outbox_batch') "
        "where batch is null returning id, value")
    relay_id = await pool.fetchval("select relay_id from saga_runtime_relay")
    zombie = AIOKafkaProducer(bootstrap_servers=log,
                              transactional_id=f"netscript-sagas-outbox-{relay_id}")
    await zombie.start()
    try:
        await zombie.begin_transaction()
        for row in claimed:
            await zombie.send_and_wait(COMMANDS, key=b"svc", value=row["value"],
                                       headers=[("x-outbox-id", str(row["id"]).encode())])
        async with OutboxRelay(pool, bootstrap_servers=log) as relay:
            await relay.run(drained)
        with pytest.raises(ProducerFenced):
            await zombie.commit_transaction()
    finally:
        with contextlib.suppress(KafkaError):
            await zombie.stop()

    assert await outbox_drained(pool)
    records = await read_topic(log, COMMANDS)
    assert sorted(header(r, "idempotency-key") or "" for r in records) == [
        f"k-{i}" for i in range(6)]
    assert sorted(int(header(r, "x-outbox-id") or 0) for r in records) == list(range(1, 7))


# -- kill -9 ------------------------------------------------------------------------------------

class RunnerProcess:
    """``python -m tests.sagas.pg_runner_app``, restartable, killable with SIGKILL."""

    def __init__(self, database_url: str, log: str, workdir: Path, group: str) -> None:
        self.env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": log,
                    "NETSCRIPT_SAGAS_GROUP": group, "PYTHONPATH": str(ROOT),
                    "PYTHONUNBUFFERED": "1", "NETSCRIPT_SAGAS_PARTITIONS": str(PARTITIONS)}
        self.log_path = workdir / "runner.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.sagas.pg_runner_app"], cwd=ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def crash_test_messages(instances: int) -> list[SagaMessage]:
    """Five messages per order, interleaved across orders: happy, compensated, parked with a
    duplicate, and still running with a duplicate."""
    per_order: list[list[SagaMessage]] = []
    for i in range(instances):
        oid = f"order-{i}"
        placed = order(oid, "OrderPlaced")
        captured = order(oid, "PaymentCaptured", paymentId=f"p-{i}")
        fulfilled = order(oid, "OrderFulfilled")
        match i % 4:
            case 0:
                sequence = [placed, captured, fulfilled, fulfilled, captured]
            case 1:
                sequence = [placed, captured, order(oid, "FulfillmentFailed", reason="gone"),
                            fulfilled, placed]
            case 2:
                keyed = replace(captured, idempotency_key=f"cap-{i}")
                sequence = [keyed, placed, keyed, fulfilled, fulfilled]
            case _:
                keyed = replace(placed, idempotency_key=f"pl-{i}")
                sequence = [keyed, keyed, captured, captured, captured]
        per_order.append(sequence)
    return [sequence[j] for j in range(5) for sequence in per_order]


def crash_free(messages: Sequence[SagaMessage]) -> tuple[
        dict[str, SagaInstance], dict[str, list[tuple[Any, ...]]], Counter[str]]:
    """The engine over ``messages`` in this process: final instances, each instance's
    transitions in order, and the commands' idempotency keys."""
    engine = SagaEngine(EXAMPLES)
    instances: dict[str, SagaInstance] = {}
    transitions: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    commands: Counter[str] = Counter()
    now = datetime.now(UTC)
    for message in messages:
        key = message.correlation_key
        assert key is not None
        step = engine.apply(instances.get(key), saga_id="order-saga", correlation_key=key,
                            message=message, now=now, source=None)
        instances[key] = step.instance
        transitions[key].extend(_transition(t) for t in step.transitions)
        commands.update(o.idempotency_key or "" for o in step.outputs if o.kind == "command")
    return instances, transitions, commands


def _transition(t: Transition) -> tuple[Any, ...]:
    return (t.event, t.from_status, t.to_status, t.message_type, t.version, t.reason)


def _outcome(instance: SagaInstance) -> tuple[Any, ...]:
    """What must not depend on crashes (timestamps do: the runtime's clock is the wall)."""
    return (instance.status, instance.state, instance.version, instance.result,
            instance.error, [message_to_json(m) for m in instance.parked], instance.seen)


@pytest.mark.slow
async def test_kill_9_mid_stream_applies_every_message_once(
        pool: asyncpg.Pool, database_url: str, log: str, tmp_path: Path) -> None:
    """SIGKILLed 3x mid-stream, the runtime ends as a crash-free run, every output exactly once."""
    messages = crash_test_messages(60)
    runner = RunnerProcess(database_url, log, tmp_path, group=f"pg-crash-{uuid.uuid4().hex[:6]}")
    placed: list[tuple[int, int]] = []

    def what() -> str:
        return f"the runtime; its output:\n{runner.output()}"

    async def applied_count() -> int:
        return int(await pool.fetchval(
            "select coalesce(sum(next_offset), 0) from saga_runtime_offsets"))

    await apply_migrations(pool)
    runner.start()
    try:
        async with PostgresSagaStore(pool) as store:
            for chunk in range(3):
                before = await applied_count()
                placed += await publish(log, [bus_record("order-saga", m)
                                              for m in messages[chunk * 100:(chunk + 1) * 100]])

                async def progressed(floor: int = before + 25) -> bool:
                    assert runner.alive(), what()
                    return await applied_count() >= floor

                await eventually(progressed, timeout=30, interval=0.01, what=what)
                runner.kill()
                runner.start()
            await eventually(lambda: all_applied(store, placed), timeout=40, what=what)
            await eventually(lambda: outbox_drained(pool), timeout=20, what=what)
    finally:
        code = runner.stop()
    assert code == 0, runner.output()

    expected, expected_transitions, expected_commands = crash_free(messages)
    async with PostgresSagaStore(pool) as store:
        for key, instance in expected.items():
            stored = await store.get("order-saga", key)
            assert stored is not None, key
            assert _outcome(stored) == _outcome(instance), key
            history = [_transition(t) for t in await store.history("order-saga", key)]
            assert history == expected_transitions[key], key
    assert await pool.fetchval("select count(*) from saga_runtime_state") == 60

    commands = await read_topic(log, COMMANDS)
    assert Counter(header(r, "idempotency-key") or "" for r in commands) == expected_commands
    assert set(expected_commands.values()) == {1}
    on_log: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for record in await read_topic(log, TRANSITIONS):
        t = Transition.from_json(json.loads(record.value))
        on_log[t.correlation_key].append(_transition(t))
    assert on_log == expected_transitions
    assert await read_topic(log, DEAD_LETTER) == []
    outbox_ids = [header(r, "x-outbox-id") for r in commands]
    assert len(outbox_ids) == len(set(outbox_ids))


# -- choosing the backend -----------------------------------------------------------------------

def test_backend_comes_from_the_environment_first() -> None:
    """NETSCRIPT_SAGA_STORE wins over the app config."""
    config = {"sagas": {"store": {"backend": "kv"}}}
    assert resolve_saga_store_backend({"NETSCRIPT_SAGA_STORE": "postgres"}, config) == "postgres"


def test_backend_falls_back_to_the_app_config() -> None:
    """Without the variable, sagas.store.backend decides."""
    assert resolve_saga_store_backend({}, {"sagas": {"store": {"backend": "kv"}}}) == "kv"


def test_prisma_is_accepted_as_postgres() -> None:
    """The seed's backend name selects the postgres store."""
    assert resolve_saga_store_backend({"NETSCRIPT_SAGA_STORE": "prisma"}) == "postgres"
    assert resolve_saga_store_backend(
        {}, {"sagas": {"store": {"backend": "prisma"}}}) == "postgres"


def test_no_backend_chosen_is_an_error_saying_how_to_choose() -> None:
    """Neither the variable nor the config: the error names both ways to choose."""
    with pytest.raises(SagaStoreConfigError, match=r"NETSCRIPT_SAGA_STORE=kv\|postgres"):
        resolve_saga_store_backend({}, {"sagas": {}})


def test_an_unknown_backend_is_an_error_naming_the_accepted_ones() -> None:
    """A typo is refused with the accepted values."""
    with pytest.raises(SagaStoreConfigError, match="use kv or postgres"):
        resolve_saga_store_backend({"NETSCRIPT_SAGA_STORE": "redis"})


async def test_the_postgres_backend_requires_a_pool() -> None:
    """backend='postgres' (or 'prisma') without a pool is refused with the seed's message."""
    for backend in ("postgres", "prisma"):
        with pytest.raises(SagaStoreConfigError,
                           match=r"^Postgres saga store backend requires an asyncpg pool\."):
            await create_durable_saga_runtime(SagaEngine(EXAMPLES), backend=backend)


async def test_create_durable_saga_runtime_builds_the_postgres_pieces(pool: asyncpg.Pool
                                                                      ) -> None:
    """With a pool: migrated tables, the runtime, an open store, and an idempotent dispose()."""
    durable = await create_durable_saga_runtime(SagaEngine(EXAMPLES), backend="prisma",
                                                pool=pool, bootstrap_servers="127.0.0.1:1")
    assert isinstance(durable.runtime, PostgresSagaRuntime)
    assert (await durable.store.list()).total == 0
    await durable.dispose()
    await durable.dispose()
    assert await pool.fetchval("select count(*) from saga_runtime_migrations") == 1

"""How the ``postgres`` runtime writes: one step, the offset it consumed, the locks it takes.

Everything here runs inside the caller's transaction. Locks are taken in one order — the
partition's offset row, then the instance row — so two transactions never wait on each other
in a cycle (the timer poll takes only instance rows).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.sagas._engine import Step, instance_id_for
from services.sagas._outbox import OutboxRecord, enqueue
from services.sagas._postgres_store import INSTANCE_COLUMNS, instance_from_row, instance_params
from services.sagas._records import SagaInstance, Source
from services.sagas._topics import DEAD_LETTER

# Also overwrites the placeholder row lock_instance inserted for a new instance.
_UPSERT = """
insert into saga_runtime_state (saga_id, correlation_key, instance_id, status, state, version,
    started_at, updated_at, result, error, parked, timers, seen, partition, next_due_ms)
values ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9::text::jsonb, $10, $11::text::jsonb,
    $12::text::jsonb, $13::text::jsonb, $14, $15)
on conflict (saga_id, correlation_key) do update set
    instance_id = excluded.instance_id, status = excluded.status, state = excluded.state,
    version = excluded.version, started_at = excluded.started_at,
    updated_at = excluded.updated_at, result = excluded.result, error = excluded.error,
    parked = excluded.parked, timers = excluded.timers, seen = excluded.seen,
    partition = excluded.partition, next_due_ms = excluded.next_due_ms
"""
_INSERT_TRANSITION = """
insert into saga_runtime_transition (saga_id, correlation_key, instance_id, event, from_status,
    to_status, message_type, version, at, partition, "offset", reason)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""


async def write_step(connection: Any, step: Step) -> None:
    """Write ``step`` — the instance, its transitions, their outbox rows — in the caller's
    transaction."""
    instance = step.instance
    await connection.execute(_UPSERT, instance.saga_id, instance.correlation_key,
                             *instance_params(instance))
    await connection.execute(
        "insert into saga_runtime_correlation (saga_id, correlation_key, instance_id) "
        "values ($1, $2, $3) on conflict do nothing",
        instance.saga_id, instance.correlation_key, instance.instance_id)
    if step.transitions:
        await connection.executemany(_INSERT_TRANSITION, [
            (t.saga_id, t.correlation_key, t.instance_id, t.event, t.from_status, t.to_status,
             t.message_type, t.version, datetime.fromisoformat(t.at),
             t.source.partition if t.source else None, t.source.offset if t.source else None,
             t.reason) for t in step.transitions])
    await enqueue(connection, [*(OutboxRecord.of_transition(t) for t in step.transitions),
                               *(OutboxRecord.of_output(o) for o in step.outputs)])


async def lock_offset(connection: Any, source: Source) -> int:
    """Lock the partition's offset row (creating it at 0) and return the next offset."""
    await connection.execute(
        "insert into saga_runtime_offsets (topic, partition, next_offset) values ($1, $2, 0) "
        "on conflict do nothing", source.topic, source.partition)
    return int(await connection.fetchval(
        "select next_offset from saga_runtime_offsets where topic = $1 and partition = $2 "
        "for update", source.topic, source.partition))


async def lock_instance(connection: Any, saga_id: str, correlation_key: str, partition: int
                        ) -> SagaInstance | None:
    """Lock the instance row; ``None`` when it did not exist (a placeholder row now holds the
    key, so a concurrent first message waits for us instead of overwriting us)."""
    created = await connection.fetchval(
        "insert into saga_runtime_state (saga_id, correlation_key, instance_id, status, "
        "partition) values ($1, $2, $3, 'pending', $4) on conflict do nothing returning true",
        saga_id, correlation_key, instance_id_for(saga_id, correlation_key), partition)
    if created:
        return None
    row = await connection.fetchrow(
        f"select {INSTANCE_COLUMNS} from saga_runtime_state where saga_id = $1 and "
        "correlation_key = $2 for update", saga_id, correlation_key)
    return instance_from_row(row)


def dead_letter(record: Any, error: BaseException) -> OutboxRecord:
    """The outbox row that sends an undecodable bus record to the dead-letter topic as it came
    (key, value, headers), with what was wrong and where it was in ``x-*`` headers."""
    headers = [(str(k), bytes(v or b"").decode("utf-8", "replace"))
               for k, v in record.headers or ()]
    headers += [("x-error-type", type(error).__name__),
                ("x-error-message", str(error)[:4096]),
                ("x-original-topic", record.topic),
                ("x-original-partition", str(record.partition)),
                ("x-original-offset", str(record.offset))]
    return OutboxRecord(topic=DEAD_LETTER, key=record.key, value=record.value, headers=headers)

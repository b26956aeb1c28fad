"""The ``postgres`` saga store: reads of the ``saga_runtime_*`` tables for the :8092 API.

Only the runtime (``_postgres_runner``) writes these tables; this module also holds the
row ↔ :class:`SagaInstance` mapping both sides share. JSON columns are read as ``::text`` and
written as ``$n::text::jsonb``, so the store works whatever JSON codec the caller's pool set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, cast

import asyncpg

from services.sagas._errors import SagaRuntimeError
from services.sagas._outbox import POSTGRES_ERRORS
from services.sagas._records import (
    SagaInstance,
    Source,
    Status,
    Timer,
    Transition,
    TransitionEvent,
    iso,
    message_from_json,
    message_to_json,
)
from services.sagas._store import InstancePage
from services.sagas._topics import BUS

INSTANCE_COLUMNS = (
    "saga_id, correlation_key, instance_id, status, state::text as state, version, "
    "started_at, updated_at, result::text as result, error, parked::text as parked, "
    "timers::text as timers, seen::text as seen, partition")
_TRANSITION_COLUMNS = (
    "saga_id, correlation_key, instance_id, event, from_status, to_status, message_type, "
    "version, at, partition, \"offset\", reason")


def instance_from_row(row: Mapping[str, Any]) -> SagaInstance:
    """The instance a ``saga_runtime_state`` row (selected with ``INSTANCE_COLUMNS``) holds."""
    return SagaInstance(
        saga_id=row["saga_id"], correlation_key=row["correlation_key"],
        instance_id=row["instance_id"], status=cast(Status, row["status"]),
        state=_json(row["state"]), version=row["version"],
        started_at=_iso(row["started_at"]), updated_at=_iso(row["updated_at"]),
        result=_json(row["result"]), error=row["error"],
        parked=tuple(message_from_json(m) for m in _json(row["parked"]) or ()),
        timers=tuple(Timer.from_json(t) for t in _json(row["timers"]) or ()),
        seen=tuple(_json(row["seen"]) or ()), partition=row["partition"])


def instance_params(instance: SagaInstance) -> tuple[Any, ...]:
    """``instance`` as the parameters ``$3..$14`` of the runtime's upsert (after the key)."""
    return (
        instance.instance_id, instance.status, json.dumps(instance.state),
        instance.version, _timestamp(instance.started_at), _timestamp(instance.updated_at),
        json.dumps(instance.result) if instance.result is not None else None, instance.error,
        json.dumps([message_to_json(m) for m in instance.parked]),
        json.dumps([t.to_json() for t in instance.timers]), json.dumps(list(instance.seen)),
        instance.partition,
        min((t.due_ms for t in instance.timers), default=None),
    )


def transition_from_row(row: Mapping[str, Any]) -> Transition:
    source = None
    if row["offset"] is not None:
        source = Source(topic=BUS, partition=row["partition"], offset=row["offset"])
    return Transition(
        saga_id=row["saga_id"], correlation_key=row["correlation_key"],
        instance_id=row["instance_id"], event=cast(TransitionEvent, row["event"]),
        from_status=cast(Status | None, row["from_status"]),
        to_status=cast(Status, row["to_status"]), message_type=row["message_type"],
        version=row["version"], at=iso(row["at"]), source=source, reason=row["reason"])


class PostgresSagaStore:
    """The :class:`~services.sagas._store.SagaStore` over the ``saga_runtime_*`` tables.

    ``async with PostgresSagaStore(pool) as store:``; the pool is the caller's and stays
    open. Reads raise :class:`SagaRuntimeError` when Postgres fails them.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._state = "new"

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise SagaRuntimeError("a PostgresSagaStore cannot be reopened; create a new one")
        self._state = "open"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._state = "closed"

    async def close(self) -> None:
        """Stop serving reads (the pool stays open); closing twice is harmless."""
        self._state = "closed"

    async def get(self, saga_id: str, correlation_key: str) -> SagaInstance | None:
        """The instance, or ``None`` when no message for it was applied yet."""
        row = await self._fetchrow(
            f"select {INSTANCE_COLUMNS} from saga_runtime_state "
            "where saga_id = $1 and correlation_key = $2", saga_id, correlation_key)
        return None if row is None else instance_from_row(row)

    async def list(self, *, saga_id: str | None = None, status: Status | None = None,
                   offset: int = 0, limit: int = 50) -> InstancePage:
        """Instances (excluding ``pending`` ones unless asked), newest update first."""
        where = ("($1::text is null or saga_id = $1) and "
                 "(case when $2::text is null then status <> 'pending' else status = $2 end)")
        self._check_open()
        try:
            async with self._pool.acquire() as connection, connection.transaction(
                    isolation="repeatable_read", readonly=True):
                total = await connection.fetchval(
                    f"select count(*) from saga_runtime_state where {where}", saga_id, status)
                rows = await connection.fetch(
                    f"select {INSTANCE_COLUMNS} from saga_runtime_state where {where} "
                    "order by updated_at desc nulls last, saga_id, correlation_key "
                    "offset $3 limit $4", saga_id, status, max(offset, 0), max(limit, 0))
        except POSTGRES_ERRORS as exc:
            raise _read_error(exc) from exc
        return InstancePage(items=[instance_from_row(r) for r in rows], total=int(total))

    async def history(self, saga_id: str, correlation_key: str) -> Sequence[Transition]:
        """The instance's transitions in the order they happened."""
        self._check_open()
        try:
            rows = await self._pool.fetch(
                f"select {_TRANSITION_COLUMNS} from saga_runtime_transition "
                "where saga_id = $1 and correlation_key = $2 order by id",
                saga_id, correlation_key)
        except POSTGRES_ERRORS as exc:
            raise _read_error(exc) from exc
        return [transition_from_row(r) for r in rows]

    async def applied(self, partition: int, offset: int) -> bool:
        """Has the runtime consumed the bus past ``offset`` on ``partition``?"""
        row = await self._fetchrow(
            "select next_offset from saga_runtime_offsets where topic = $1 and partition = $2",
            BUS, partition)
        return row is not None and int(row["next_offset"]) > offset

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        self._check_open()
        try:
            return await self._pool.fetchrow(query, *args)
        except POSTGRES_ERRORS as exc:
            raise _read_error(exc) from exc

    def _check_open(self) -> None:
        if self._state != "open":
            raise SagaRuntimeError("the PostgresSagaStore is not open; use it inside "
                                   "`async with PostgresSagaStore(pool) as store:`")


def _read_error(exc: BaseException) -> SagaRuntimeError:
    return SagaRuntimeError(f"cannot read the saga store: {exc}; check Postgres is reachable "
                            "and the saga_runtime_* tables exist (apply_migrations)")


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def _timestamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)

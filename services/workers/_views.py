"""The read side: executions and pools as the dispatcher's changelogs say now.

:class:`ExecutionsView` materializes the latest value per key of the executions and pools
changelogs (committed records only) in this process, so the API answers from memory, counts
each lane's backlog for admission control, and streams changes (SSE) resumable by changelog
offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.workers._jobs import LANES, Lane
from services.workers._records import ACTIVE, Execution, PoolState
from services.workers._topics import EXECUTIONS_CHANGELOG, POOLS_CHANGELOG

log = logging.getLogger("netscript.workers.views")


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """One execution change, at its changelog offset (the SSE event id)."""

    offset: int
    execution: Execution


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolTasks:
    """A pool's current leases and its free credits per lane."""

    pool: PoolState
    leases: tuple[Execution, ...]
    free: dict[str, int] = field(default_factory=dict)


class ExecutionsView:
    """``await view.start()`` … ``await view.close()``; see the module docstring."""

    def __init__(self, bootstrap_servers: str, *, history: int = 10_000) -> None:
        self._bootstrap = bootstrap_servers
        self.executions: dict[str, Execution] = {}
        self.pools: dict[str, PoolState] = {}
        self._queued: dict[str, int] = dict.fromkeys(LANES, 0)
        self._changes: list[Change] = []
        self._history = history
        self._changed = asyncio.Condition()
        self.caught_up = asyncio.Event()
        self.failed: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="workers-views")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- queries ----------------------------------------------------------------------------

    def queued(self, lane: Lane) -> int:
        """Executions waiting in ``lane`` (the backlog admission control compares)."""
        return self._queued[lane]

    def get(self, execution_id: str) -> Execution | None:
        return self.executions.get(execution_id)

    def select(self, *, status: str | None = None, job_id: str | None = None,
               lane: str | None = None, pool: str | None = None) -> list[Execution]:
        """Matching executions, newest first."""
        found = [e for e in self.executions.values()
                 if (status is None or e.status == status)
                 and (job_id is None or e.job_id == job_id)
                 and (lane is None or e.lane == lane)
                 and (pool is None or e.pool == pool)]
        found.sort(key=lambda e: (e.created_at, e.execution_id), reverse=True)
        return found

    def tasks(self) -> list[PoolTasks]:
        """Every known pool with the leases it holds and its free credits."""
        held: dict[str, list[Execution]] = {}
        for execution in self.executions.values():
            if execution.status in ACTIVE and execution.pool is not None:
                held.setdefault(execution.pool, []).append(execution)
        out = []
        for pool in sorted(self.pools.values(), key=lambda p: p.pool):
            leases = tuple(held.get(pool.pool, ()))
            normal = sum(1 for e in leases if e.lane == "normal")
            free_total = max(pool.capacity - len(leases), 0) if pool.alive else 0
            out.append(PoolTasks(pool=pool, leases=leases, free={
                "urgent": free_total,
                "normal": max(0, min(free_total, pool.normal_limit - normal))}))
        return out

    async def wait_for(self, execution_id: str, predicate: Callable[[Execution], bool],
                       timeout: float) -> Execution | None:
        """The execution once ``predicate`` holds (``None`` after ``timeout`` seconds)."""
        async def reached() -> Execution:
            async with self._changed:
                while True:
                    execution = self.executions.get(execution_id)
                    if execution is not None and predicate(execution):
                        return execution
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return None

    async def changes(self, after: int | None = None) -> AsyncIterator[Change]:
        """Changes after offset ``after`` (``None``: from now on), then live ones."""
        position = self._changes[-1].offset if after is None and self._changes else after
        if position is None:
            position = -1
        while True:
            async with self._changed:
                pending = [c for c in self._changes if c.offset > position]
                if not pending:
                    await self._changed.wait()
                    continue
            for change in pending:
                position = change.offset
                yield change

    # -- the reader -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as error:
                self.failed = error
                log.warning("workers views: %s; reading again", error)
                await asyncio.sleep(1)
            except Exception as error:
                # A bug of ours: /health/ready reports it (failed) instead of a silent task.
                self.failed = error
                log.exception("workers views stopped reading; reading again")
                await asyncio.sleep(1)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap,
                                    isolation_level="read_committed", enable_auto_commit=False,
                                    group_id=None, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            tps = [TopicPartition(EXECUTIONS_CHANGELOG, 0), TopicPartition(POOLS_CHANGELOG, 0)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self.executions.clear()
            self.pools.clear()
            self._queued = dict.fromkeys(LANES, 0)
            ends = await consumer.end_offsets(tps)
            self.failed = None
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=2000)
                async with self._changed:
                    for tp, records in batch.items():
                        self._apply(tp.topic, records)
                    if batch:
                        self._changed.notify_all()
                if not self.caught_up.is_set():
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)):
                        self.caught_up.set()
        finally:
            await consumer.stop()

    def _apply(self, topic: str, records: Iterable[Any]) -> None:
        for record in records:
            try:
                key = json.loads(record.key)
                value = json.loads(record.value) if record.value is not None else None
                if topic == POOLS_CHANGELOG:
                    if value is None:
                        self.pools.pop(key, None)
                    else:
                        self.pools[key] = PoolState.from_json(value)
                    continue
                execution = Execution.from_json(value) if value is not None else None
            except (ValueError, KeyError, TypeError) as error:
                log.warning("workers views: skipped a bad record at %s/%d: %s", topic,
                            record.offset, error)
                continue
            old = self.executions.get(key)
            if old is not None and old.status == "queued":
                self._queued[old.lane] -= 1
            if execution is None:
                self.executions.pop(key, None)
                continue
            self.executions[key] = execution
            if execution.status == "queued":
                self._queued[execution.lane] += 1
            self._changes.append(Change(offset=record.offset, execution=execution))
        if len(self._changes) > self._history:
            del self._changes[: len(self._changes) - self._history]

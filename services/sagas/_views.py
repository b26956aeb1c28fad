"""Materialized views the sagas API reads: the transitions feed, and the ``kv`` store.

:class:`TransitionFeed` follows ``sagas.transitions`` (both backends write it: ``kv`` in the
processor's transaction, ``postgres`` through its outbox): per-instance history, how far the
runtime got on each bus partition (read-your-writes), and a wake-up for SSE subscribers.
:class:`KvSagaStore` adds the latest instance per key from the instance table's compacted
changelog. Both read committed records only, so they never show an aborted transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.sagas._errors import SagaError
from services.sagas._records import SagaInstance, Status, Transition, instance_key
from services.sagas._store import InstancePage
from services.sagas._topics import INSTANCES_CHANGELOG, TRANSITIONS

log = logging.getLogger("netscript.sagas.views")

TOUCHED_KEPT = 50_000
"""How many recent bus records the feed remembers the instance versions of."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedEntry:
    """One transition and where it sits in the feed (for SSE ids and resumption)."""

    transition: Transition
    partition: int
    offset: int


class _TopicFollower:
    """Reads topics from the beginning, forever, handing each record to ``apply``."""

    def __init__(self, bootstrap_servers: str, topics: Sequence[str], client_id: str) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = list(topics)
        self._client_id = client_id
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.caught_up = asyncio.Event()
        self.changed = asyncio.Condition()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id,
            isolation_level="read_committed", enable_auto_commit=False,
            auto_offset_reset="earliest")
        await consumer.start()
        self._consumer = consumer
        tps = []
        for topic in self._topics:
            partitions = await consumer._client._wait_on_metadata(topic)
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._tps = tps
        self._ends = await consumer.end_offsets(tps)
        self._positions: dict[TopicPartition, int] = dict.fromkeys(tps, 0)
        self._task = asyncio.create_task(self._follow(consumer), name=f"{self._client_id}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def failed(self) -> BaseException | None:
        """The error that stopped following (the health check reports it)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            except KafkaError as exc:  # the log is away; the consumer reconnects
                log.warning("sagas views: %s; retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                for record in records:
                    try:
                        self.apply(record)
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("sagas views: skipping bad record %s@%d: %s", tp,
                                    record.offset, exc)
            positions = {tp: await consumer.position(tp) for tp in self._tps}
            moved = positions != self._positions
            self._positions = positions
            if not self.caught_up.is_set() and all(
                    positions[tp] >= end for tp, end in self._ends.items()):
                self.caught_up.set()
            if batches or moved:
                async with self.changed:
                    self.changed.notify_all()

    def apply(self, record: Any) -> None:
        raise NotImplementedError


class TransitionFeed(_TopicFollower):
    """Every transition, by instance and in feed order; the runtime's progress per partition."""

    def __init__(self, bootstrap_servers: str) -> None:
        super().__init__(bootstrap_servers, [TRANSITIONS], "sagas-api-transitions")
        self.entries: list[FeedEntry] = []
        self._history: dict[str, list[Transition]] = defaultdict(list)
        self._applied: dict[int, int] = {}
        self._next: dict[int, int] = {}
        # Which instance versions each recent bus record produced (for read-your-writes).
        self._touched: OrderedDict[tuple[int, int], dict[str, int]] = OrderedDict()

    def apply(self, record: Any) -> None:
        transition = Transition.from_json(json.loads(record.value))
        self.entries.append(FeedEntry(transition=transition, partition=record.partition,
                                      offset=record.offset))
        self._history[transition.key].append(transition)
        self._next[record.partition] = record.offset + 1
        source = transition.source
        if source is not None:
            if source.offset >= self._applied.get(source.partition, -1):
                self._applied[source.partition] = source.offset
            touched = self._touched.setdefault((source.partition, source.offset), {})
            touched[transition.key] = max(touched.get(transition.key, 0), transition.version)
            if len(self._touched) > TOUCHED_KEPT:
                self._touched.popitem(last=False)

    def ends(self) -> dict[int, int]:
        """The next offset of each partition after the entries held now."""
        return dict(self._next)

    def touched(self, partition: int, offset: int) -> dict[str, int]:
        """The instances (and versions) the bus record at ``(partition, offset)`` produced;
        empty once it is too old to be remembered."""
        return dict(self._touched.get((partition, offset), {}))

    def history(self, saga_id: str, correlation_key: str) -> list[Transition]:
        return list(self._history.get(instance_key(saga_id, correlation_key), ()))

    def applied(self, partition: int, offset: int) -> bool:
        return self._applied.get(partition, -1) >= offset

    async def wait_applied(self, positions: Iterable[tuple[int, int]], timeout: float) -> bool:
        """Wait until the runtime applied every ``(partition, offset)``; ``False`` on timeout."""
        wanted = list(positions)

        def done() -> bool:
            return all(self.applied(p, o) for p, o in wanted)

        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(done)
        except TimeoutError:
            return done()
        return True

    def _holds_more_than(self, count: int) -> bool:
        return len(self.entries) > count

    async def follow(self, start: int = 0) -> AsyncIterator[tuple[int, FeedEntry]]:
        """Feed entries from index ``start`` on, waiting for new ones (for SSE)."""
        index = start
        while True:
            while index < len(self.entries):
                yield index, self.entries[index]
                index += 1
            async with self.changed:
                await self.changed.wait_for(functools.partial(self._holds_more_than, index))


class KvSagaStore(_TopicFollower):
    """The ``kv`` store's read side: the instance changelog, latest value per key."""

    def __init__(self, bootstrap_servers: str, feed: TransitionFeed) -> None:
        super().__init__(bootstrap_servers, [INSTANCES_CHANGELOG], "sagas-api-instances")
        self._feed = feed
        self._instances: dict[str, SagaInstance] = {}

    async def __aenter__(self) -> KvSagaStore:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def apply(self, record: Any) -> None:
        key = json.loads(record.key)
        if record.value is None:
            self._instances.pop(key, None)
        else:
            self._instances[key] = SagaInstance.from_json(json.loads(record.value))

    async def get(self, saga_id: str, correlation_key: str) -> SagaInstance | None:
        return self._instances.get(instance_key(saga_id, correlation_key))

    async def list(self, *, saga_id: str | None = None, status: Status | None = None,
                   offset: int = 0, limit: int = 50) -> InstancePage:
        matches = [i for i in self._instances.values()
                   if (saga_id is None or i.saga_id == saga_id)
                   and (i.status == status if status else i.status != "pending")]
        matches.sort(key=lambda i: (i.updated_at or "", i.key), reverse=True)
        return InstancePage(items=matches[offset:offset + limit], total=len(matches))

    async def history(self, saga_id: str, correlation_key: str) -> Sequence[Transition]:
        return self._feed.history(saga_id, correlation_key)

    async def applied(self, partition: int, offset: int, timeout: float = 10.0) -> bool:
        # The transitions and the changelog commit in one transaction: once the feed shows the
        # record applied, wait until this view holds the instance versions it produced.
        if not self._feed.applied(partition, offset):
            return False
        wanted = self._feed.touched(partition, offset)

        def holds() -> bool:
            return all((found := self._instances.get(key)) is not None and found.version >= v
                       for key, v in wanted.items())

        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(holds)
        except TimeoutError:
            return holds()
        return True


def parse_positions(text: str) -> list[tuple[int, int]]:
    """``"0:15,1:7"`` (a publish receipt's ``position``) as ``[(0, 15), (1, 7)]``."""
    out = []
    for part in text.split(","):
        partition, sep, offset = part.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise SagaError(f"invalid position {text!r}: use the publish receipt's position, "
                            "e.g. '0:15' or '0:15,1:7'")
        out.append((int(partition), int(offset)))
    return out

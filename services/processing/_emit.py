"""A cheap way out of an exactly-once agent: serialized records into the event's transaction.

faust sends every record — an agent's ``Topic.send_soon`` as well as a table's changelog
update — through ``FutureMessage``, ``Topic.publish_message``, the sensors, faust's
``TransactionManager`` and its producer, at about 200 µs a record; a processor emitting two or
three records per event spends most of its time there. :func:`emit` and :class:`ChangelogTable`
queue a :class:`~services.processing._faust_fixes.RawRecord` instead, which the same gated
buffer hands straight to the transactional producer of the event's partition.

Exactly-once holds as for faust's own path (see ``_faust_fixes``): the record is queued
synchronously while the agent handles the event, so before the event is acked; a commit
drains the buffer into the open transaction before it takes the acked offsets, with no await
in between. The record names the transaction of the event's own partition, the one that
commits the event's offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import faust
from faust.types import AppT, EventT

from services.processing._faust_fixes import GatedProducerBuffer, RawRecord


def event_transactional_id(event: EventT[Any]) -> str | None:
    """The transactional id that commits ``event``'s offset (``None`` outside a transaction)."""
    app = event.app
    if not app.in_transaction:
        return None
    tp = event.message.tp
    group = app.assignor.group_for_topic(tp.topic)
    return f"{app.conf.id}-{group}-{tp.partition}"


def emit(event: EventT[Any], topic: str, *, key: bytes | None, value: bytes | None,
         headers: Iterable[tuple[str, bytes]] = (), partition: int | None = None) -> None:
    """Send a serialized record for ``event``: it commits exactly when ``event``'s offset does.

    Call it while handling ``event`` (before the agent moves on: it is acked then) and never
    after an await that follows the event's first write. ``partition=None`` partitions by
    ``key`` as Kafka's default partitioner does.
    """
    _buffer(event.app).put_record(RawRecord(
        topic=topic, partition=partition, key=key, value=value, headers=list(headers),
        transactional_id=event_transactional_id(event)))


def _buffer(app: AppT) -> GatedProducerBuffer:
    buffer = app.producer.buffer
    if not isinstance(buffer, GatedProducerBuffer):
        raise TypeError("emit() needs an app built by services.processing.processor_app()")
    return buffer


class ChangelogTable(faust.Table[Any, Any]):
    """A faust ``Table`` whose changelog updates take :func:`emit`'s cheap path.

    The records are the ones faust would send (same serializers, the event's partition, the
    event's transaction); only the per-record layers are skipped. faust's changelog callback
    (which records the persisted offset) is skipped too, so it is for in-memory stores, which
    recover from the changelog's beginning anyway.

    On a rebalance faust does not commit the open transaction of a revoked partition: it
    drops the partition's acked offsets and stops its producer, so the transaction is aborted
    (fenced by the next owner). The writes of those events stay in the in-memory table,
    though, and if the partition comes back to this process its events are handled again on
    top of them (seen here: a saga message applied to an instance its own aborted first pass
    had completed). So the table forgets everything when partitions are revoked — once the
    agents are idle — and recovery rebuilds it from what the changelog committed.
    """

    def __init__(self, app: AppT, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        app.on_partitions_revoked.connect(self._forget_uncommitted)

    async def _forget_uncommitted(self, *args: Any, **kwargs: Any) -> None:
        store: Any = self.data  # the in-memory store (see the class docstring)
        store._clear()
        key_partitions = getattr(store, "_key_partition", None)
        if key_partitions is not None:
            key_partitions.clear()

    def on_key_set(self, key: Any, value: Any) -> None:
        self._emit_changelog(key, value)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        self._emit_changelog(key, None)
        self._sensor_on_del(self, key)

    def _emit_changelog(self, key: Any, value: Any) -> None:
        event = faust.current_event()
        if event is None:
            raise TypeError("Cannot modify table key from outside of stream iteration")
        partition = self.partition_for_key(key)
        # The changelog is a faust Topic, whose prepare_* take a schema (ChannelT's do not).
        topic = cast(faust.Topic, self.changelog_topic)
        key_bytes, headers = topic.prepare_key(key, self.key_serializer, None, [])
        if value is None:
            value_bytes = None
        else:
            value_bytes, headers = topic.prepare_value(value, self.value_serializer, None,
                                                       headers)
        if isinstance(headers, dict):
            headers = list(headers.items())
        emit(event, topic.get_topic_name(), key=key_bytes, value=value_bytes,
             headers=cast(list[tuple[str, bytes]], headers or []), partition=partition)

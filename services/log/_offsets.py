"""Committed consumer-group offsets, durable in a journal.

Kafka keeps these in the ``__consumer_offsets`` topic. A single-node broker replicates nothing,
so a checksummed journal is enough: each commit is appended and fsynced before the caller is
answered, and the state is replayed on open. When the journal holds far more entries than the
state it describes, it is rewritten as a snapshot so restarts stay fast.

Transactional offsets (TxnOffsetCommit) are staged under their producer id: durable, so a broker
restart between TxnOffsetCommit and EndTxn keeps them, yet invisible to ``fetch`` until EndTxn
commits the transaction. Applying or discarding them is a single journal entry, so a crash can
never leave half of a transaction's offsets applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from services.log._errors import BrokerClosedError, StorageError
from services.log._journal import Entry, Journal

TopicPartition = tuple[str, int]
# (offset, metadata, leader epoch of the record at offset-1, or -1 when the client sent none)
OffsetAndMetadata = tuple[int, str, int]
Offsets = dict[TopicPartition, OffsetAndMetadata]

NO_OFFSET: OffsetAndMetadata = (-1, "", -1)
"""What ``fetch`` answers for a partition the group never committed (Kafka's convention)."""


class OffsetStore:
    """Durable committed offsets of consumer groups, plus staged transactional offsets.

    Use :meth:`open`; the store is a context manager and ``close()`` is idempotent. Methods
    called after ``close()`` raise :class:`BrokerClosedError`.
    """

    def __init__(self, journal: Journal, *, compact_after: int) -> None:
        self._journal: Journal | None = journal
        self._compact_after = compact_after
        self._committed: dict[str, Offsets] = {}
        self._staged: dict[int, dict[str, Offsets]] = {}
        # Entries currently in the journal file, to decide when a snapshot pays off.
        self._entries = 0

    @classmethod
    def open(cls, path: Path, *, compact_after: int = 1000) -> OffsetStore:
        """Open (or create) the store journaled at ``path`` and replay it.

        A torn or corrupt tail (a crash mid-write) is dropped by the journal. The journal is
        rewritten as a snapshot once it holds more than ``compact_after`` entries and more than
        twice the entries a snapshot needs. Raises :class:`StorageError` if an intact entry is
        not one this version wrote (a newer broker's data directory).
        """
        journal = Journal.open(path)
        store = cls(journal, compact_after=compact_after)
        try:
            for entry in journal.replay():
                store._apply(entry)
                store._entries += 1
            store._maybe_compact()
        except BaseException:
            journal.close()
            raise
        return store

    def commit(self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Record ``offsets`` as the group's committed positions; on disk when this returns."""
        if not offsets:
            return
        self._write({"op": "commit", "group": group_id, "offsets": _encode(offsets)})

    def fetch(self, group_id: str, partitions: Iterable[TopicPartition] | None = None) -> Offsets:
        """The group's committed offsets: all of them (``None``), or one per asked partition.

        A partition without a committed offset maps to ``(-1, "")``. Staged transactional
        offsets are not visible here until their transaction commits.
        """
        self._check_open()
        committed = self._committed.get(group_id, {})
        if partitions is None:
            return dict(committed)
        return {tp: committed.get(tp, NO_OFFSET) for tp in partitions}

    def groups(self) -> set[str]:
        """The ids of the groups that have committed offsets."""
        self._check_open()
        return set(self._committed)

    def delete_group(self, group_id: str) -> None:
        """Forget every committed offset of the group (DeleteGroups); durable on return."""
        if group_id in self._committed:
            self._write({"op": "delete", "group": group_id})
        else:
            self._check_open()

    def forget(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        """Forget the group's committed offsets of ``partitions`` (OffsetDelete); durable on
        return. A group left without offsets is no longer listed by :meth:`groups`."""
        committed = self._committed.get(group_id, {})
        gone = sorted({tp for tp in partitions if tp in committed})
        if gone:
            self._write(
                {"op": "forget", "group": group_id, "partitions": [list(tp) for tp in gone]}
            )
        else:
            self._check_open()

    def stage(
        self, producer_id: int, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        """Stage offsets of a transaction (TxnOffsetCommit): durable, invisible until commit.

        Staging the same partition twice in one transaction keeps the later offset.
        """
        if not offsets:
            return
        self._write(
            {"op": "stage", "pid": producer_id, "group": group_id, "offsets": _encode(offsets)}
        )

    def staged(self, group_id: str) -> set[TopicPartition]:
        """Partitions of the group with offsets staged by a transaction still open.

        OffsetFetch with ``require_stable`` (KIP-447) answers these with UNSTABLE_OFFSET_COMMIT.
        """
        self._check_open()
        return {tp for groups in self._staged.values() for tp in groups.get(group_id, {})}

    def complete(self, producer_id: int, commit: bool) -> None:
        """End the producer's transaction (EndTxn): apply or discard its staged offsets at once.

        A producer with nothing staged is a no-op, so a retried EndTxn is harmless.
        """
        if producer_id in self._staged:
            self._write({"op": "complete", "pid": producer_id, "commit": commit})
        else:
            self._check_open()

    def close(self) -> None:
        """Close the journal; closing twice is harmless."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> OffsetStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> Journal:
        if self._journal is None:
            raise BrokerClosedError(
                "the offset store is closed; open a new one with OffsetStore.open"
            )
        return self._journal

    def _write(self, entry: Entry) -> None:
        # Journal first, memory second: a failed fsync must not leave an offset visible that a
        # restart would forget.
        self._check_open().append(entry)
        self._entries += 1
        self._apply(entry)
        self._maybe_compact()

    def _apply(self, entry: Entry) -> None:
        try:
            op = entry["op"]
            if op == "commit":
                self._committed.setdefault(entry["group"], {}).update(_decode(entry["offsets"]))
            elif op == "delete":
                self._committed.pop(entry["group"], None)
            elif op == "forget":
                committed = self._committed.get(entry["group"], {})
                for topic, partition in entry["partitions"]:
                    committed.pop((topic, _int(partition)), None)
                if not committed:
                    self._committed.pop(entry["group"], None)
            elif op == "stage":
                groups = self._staged.setdefault(_int(entry["pid"]), {})
                groups.setdefault(entry["group"], {}).update(_decode(entry["offsets"]))
            elif op == "complete":
                groups = self._staged.pop(_int(entry["pid"]), {})
                if entry["commit"] is True:
                    for group_id, offsets in groups.items():
                        self._committed.setdefault(group_id, {}).update(offsets)
            else:
                raise StorageError(
                    f"unknown offset journal entry {op!r}; the data directory was written by a "
                    "newer broker, run that version"
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(
                f"malformed offset journal entry {entry!r}: {exc}; restore the data directory "
                "from a backup or delete the offsets journal"
            ) from exc

    def _snapshot(self) -> Iterator[Entry]:
        for group_id, offsets in self._committed.items():
            yield {"op": "commit", "group": group_id, "offsets": _encode(offsets)}
        for producer_id, groups in self._staged.items():
            for group_id, offsets in groups.items():
                yield {
                    "op": "stage",
                    "pid": producer_id,
                    "group": group_id,
                    "offsets": _encode(offsets),
                }

    def _maybe_compact(self) -> None:
        if self._entries <= self._compact_after:
            return
        size = len(self._committed) + sum(len(groups) for groups in self._staged.values())
        if self._entries > 2 * size:
            snapshot = list(self._snapshot())
            self._check_open().rewrite(snapshot)
            self._entries = len(snapshot)


def _encode(offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> list[list[Any]]:
    return [
        [topic, partition, offset, metadata, epoch]
        for (topic, partition), (offset, metadata, epoch) in offsets.items()
    ]


def _decode(raw: Any) -> Offsets:
    offsets: Offsets = {}
    for entry in raw:
        # Entries written before leader epochs were kept have four fields.
        topic, partition, offset, metadata, *rest = entry
        if not isinstance(topic, str) or not isinstance(metadata, str):
            raise TypeError("topic and metadata must be strings")
        epoch = _int(rest[0]) if rest else -1
        offsets[(topic, _int(partition))] = (_int(offset), metadata, epoch)
    return offsets


def _int(value: Any) -> int:
    # bool is an int to Python, never to the journal's writer.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value

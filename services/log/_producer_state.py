"""What a partition remembers about idempotent and transactional producers.

Idempotence: per producer id, the epoch and the sequence/offset ranges of its last five
batches, so a retried batch is recognised as a duplicate and answered with its original
offsets, and a gap in sequences is refused. Transactions: the first offset of each ongoing
transaction (the last stable offset is the smallest of them) and the ranges of aborted ones,
which read_committed fetches return so clients can drop those records.

Checks never mutate: ``check`` returns the new entries and ``apply`` installs them, so an
append of several batches is all-or-nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from services.log._batch import BatchHeader
from services.log._errors import ErrorCode, KafkaError

INT32_MAX = 2**31 - 1
# Kafka keeps this many batches per producer for duplicate detection (max.in.flight = 5).
MAX_TRACKED_BATCHES = 5


def last_sequence(base_sequence: int, delta: int) -> int:
    """The sequence of a batch's last record; sequences wrap from INT32_MAX to 0."""
    if base_sequence > INT32_MAX - delta:
        return delta - (INT32_MAX - base_sequence) - 1
    return base_sequence + delta


@dataclass(frozen=True, kw_only=True, slots=True)
class SequencedBatch:
    """The sequence and offset range of one stored batch of a producer."""

    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ProducerEntry:
    """A producer's epoch and its most recent batches (oldest first)."""

    epoch: int
    batches: tuple[SequencedBatch, ...] = ()

    def with_batch(self, batch: SequencedBatch) -> ProducerEntry:
        return ProducerEntry(
            epoch=self.epoch, batches=(*self.batches, batch)[-MAX_TRACKED_BATCHES:]
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Duplicate:
    """A retried batch that is already stored, with the offsets it got the first time."""

    base_offset: int
    last_offset: int


class ProducerStates:
    """Sequence state of every producer that wrote to the partition."""

    def __init__(self) -> None:
        self._entries: dict[int, ProducerEntry] = {}

    def get(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    def check(
        self, headers: Sequence[BatchHeader], first_offset: int
    ) -> dict[int, ProducerEntry] | Duplicate:
        """Validate batches about to be stored at consecutive offsets from ``first_offset``.

        Returns the producers' new entries, or the ``Duplicate`` when a batch was stored
        before (then nothing of the append may be stored). Raises ``KafkaError`` with
        ``INVALID_PRODUCER_EPOCH`` or ``OUT_OF_ORDER_SEQUENCE_NUMBER``.
        """
        updates: dict[int, ProducerEntry] = {}
        offset = first_offset
        for header in headers:
            base, offset = offset, offset + header.last_offset_delta + 1
            pid = header.producer_id
            if pid < 0:
                continue
            entry = updates.get(pid) or self._entries.get(pid)
            first_seq = header.base_sequence
            last_seq = last_sequence(first_seq, header.last_offset_delta)
            if entry is not None and header.producer_epoch < entry.epoch:
                raise KafkaError(
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                    f"producer {pid} epoch {header.producer_epoch} is older than the current "
                    f"epoch {entry.epoch}; this producer was fenced, re-initialise it",
                )
            if entry is None or header.producer_epoch > entry.epoch:
                entry = ProducerEntry(epoch=header.producer_epoch)
            for stored in entry.batches:
                if (stored.first_sequence, stored.last_sequence) == (first_seq, last_seq):
                    return Duplicate(
                        base_offset=stored.first_offset, last_offset=stored.last_offset
                    )
            expected = 0 if not entry.batches else last_sequence(entry.batches[-1].last_sequence, 1)
            if first_seq != expected:
                raise KafkaError(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"producer {pid} epoch {header.producer_epoch} sent sequence {first_seq}, "
                    f"expected {expected}; earlier batches were lost, the producer must reset",
                )
            updates[pid] = entry.with_batch(
                SequencedBatch(
                    first_sequence=first_seq,
                    last_sequence=last_seq,
                    first_offset=base,
                    last_offset=offset - 1,
                )
            )
        return updates

    def apply(self, updates: dict[int, ProducerEntry]) -> None:
        """Install entries returned by ``check``."""
        self._entries.update(updates)

    def replay(self, header: BatchHeader) -> None:
        """Take a batch read back from the log into account (recovery trusts the log)."""
        pid = header.producer_id
        if pid < 0:
            return
        entry = self._entries.get(pid)
        if entry is None or header.producer_epoch > entry.epoch:
            entry = ProducerEntry(epoch=header.producer_epoch)
        if header.is_control:
            self._entries[pid] = entry
            return
        self._entries[pid] = entry.with_batch(
            SequencedBatch(
                first_sequence=header.base_sequence,
                last_sequence=last_sequence(header.base_sequence, header.last_offset_delta),
                first_offset=header.base_offset,
                last_offset=header.last_offset,
            )
        )

    def check_marker(self, producer_id: int, producer_epoch: int) -> None:
        """Refuse a transaction marker from a fenced (older) epoch with INVALID_PRODUCER_EPOCH."""
        entry = self._entries.get(producer_id)
        if entry is not None and producer_epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"marker for producer {producer_id} has epoch {producer_epoch}, older than "
                f"{entry.epoch}; the coordinator must use the current epoch",
            )

    def apply_marker(self, producer_id: int, producer_epoch: int) -> None:
        """A marker with a newer epoch starts that epoch's sequences afresh."""
        entry = self._entries.get(producer_id)
        if entry is None or producer_epoch > entry.epoch:
            self._entries[producer_id] = ProducerEntry(epoch=producer_epoch)


class Transactions:
    """Ongoing transactions (first offsets) and aborted ones (ranges) of a partition."""

    def __init__(self) -> None:
        self.ongoing: dict[int, int] = {}
        # (last offset = marker offset, producer id, first offset), in marker order.
        self._aborted: list[tuple[int, int, int]] = []

    def check(self, headers: Sequence[BatchHeader]) -> None:
        """Refuse non-transactional writes from a producer inside a transaction."""
        for header in headers:
            pid = header.producer_id
            if header.is_transactional and pid < 0:
                raise KafkaError(
                    ErrorCode.INVALID_RECORD,
                    "a transactional batch needs a producer id; call InitProducerId first",
                )
            if not header.is_transactional and pid >= 0 and pid in self.ongoing:
                raise KafkaError(
                    ErrorCode.INVALID_TXN_STATE,
                    f"producer {pid} sent a non-transactional batch inside its ongoing "
                    "transaction; commit or abort it first",
                )

    def begin(self, producer_id: int, offset: int) -> None:
        """A transactional batch stored at ``offset`` may start its producer's transaction."""
        self.ongoing.setdefault(producer_id, offset)

    def end(self, producer_id: int, *, commit: bool, marker_offset: int) -> None:
        """A marker at ``marker_offset`` ends the producer's ongoing transaction, if any."""
        first = self.ongoing.pop(producer_id, None)
        if first is not None and not commit:
            self._aborted.append((marker_offset, producer_id, first))

    def first_unstable(self) -> int | None:
        """The smallest first offset of the ongoing transactions."""
        return min(self.ongoing.values(), default=None)

    def aborted(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(producer_id, first_offset)`` of aborted transactions overlapping ``[start, end)``."""
        i = bisect.bisect_left(self._aborted, (start,))
        return [(pid, first) for _last, pid, first in self._aborted[i:] if first < end]

    def aborted_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """Per producer, the ``(first, last)`` offset ranges of its aborted transactions."""
        ranges: dict[int, list[tuple[int, int]]] = {}
        for last, pid, first in self._aborted:
            ranges.setdefault(pid, []).append((first, last))
        return ranges

    def forget_before(self, offset: int) -> None:
        """Drop aborted ranges that end before ``offset`` (their data was deleted)."""
        i = bisect.bisect_left(self._aborted, (offset,))
        del self._aborted[:i]

"""The log of one topic partition: the storage the broker's produce and fetch handlers use.

A directory of segments (see ``_segment``). Batches are stored as received with only their
base offset patched, written with ``os.write`` and made durable by ``sync()``, a group commit:
concurrent callers share one fsync. Opening a directory recovers it: every batch header is
scanned to rebuild producer and transaction state, and a torn or corrupt tail is cut off
before anything is served. ``log-start-offset`` (a ``Journal``) remembers DeleteRecords.

A partition holds no descriptor of its own: its files are ``FileHandle``s of the broker-wide
``OpenFiles`` cache, opened on use and closed when other partitions need the room.
"""

from __future__ import annotations

import bisect
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from services.log import _compaction
from services.log._batch import (
    BatchHeader,
    control_batch,
    iter_records,
    null_key_indexes,
    parse_header,
    set_base_offset,
    split_batches,
)
from services.log._config import TopicConfig
from services.log._errors import BrokerClosedError, ErrorCode, KafkaError, StorageError
from services.log._files import OpenFiles, default_max_open_files
from services.log._group_commit import GroupCommit
from services.log._journal import Journal, write_snapshot
from services.log._producer_state import Duplicate, ProducerStates, Transactions
from services.log._recovery import recover_segments, remove_leftovers
from services.log._segment import (
    MAX_RELATIVE_OFFSET,
    MAX_SEGMENT_BYTES,
    Segment,
)

_BASE_AND_LENGTH = struct.Struct(">qi")
_LOG_START_FILE = "log-start-offset"


@dataclass(frozen=True, kw_only=True, slots=True)
class AppendResult:
    """Where an append landed; ``duplicate`` means a retry already stored at these offsets."""

    base_offset: int
    last_offset: int
    log_start_offset: int
    duplicate: bool = False


class PartitionLog:
    """The append-only, segmented, recoverable log of one partition.

    Not thread-safe: call it from the event loop's thread; only ``sync()`` leaves it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        config: TopicConfig,
        segments: list[Segment],
        log_start_offset: int,
        producers: ProducerStates,
        transactions: Transactions,
        files: OpenFiles,
    ) -> None:
        self.directory = directory
        self.config = config
        self.segments = segments
        self.log_start_offset = log_start_offset
        self._producers = producers
        self._txns = transactions
        self._files = files
        self._closed = False
        self._commit = GroupCommit(directory, files)
        self._compacted: tuple[object, ...] = ()
        self._compact_recheck_ms = 0

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, *, config: TopicConfig, files: OpenFiles | None = None
    ) -> PartitionLog:
        """Open the partition in ``directory``, creating it or recovering what a crash left.

        ``files`` is the broker's cache of open files (a private one when not given). Raises
        ``StorageError`` when the directory cannot be used.
        """
        if files is None:
            files = OpenFiles(default_max_open_files())
        try:
            directory.mkdir(parents=True, exist_ok=True)
            remove_leftovers(directory)
            journal = Journal.open(directory / _LOG_START_FILE)
            journal.close()  # read once; DeleteRecords rewrites it whole
            persisted_start = 0
            for entry in journal.replay():
                persisted_start = int(entry["log_start_offset"])
            segments, producers, txns = recover_segments(directory, persisted_start, files)
        except OSError as exc:
            raise StorageError(f"cannot use partition directory {directory}: {exc}") from exc
        start = max(persisted_start, segments[0].base_offset)
        return cls(
            directory,
            config=config,
            segments=segments,
            log_start_offset=min(start, segments[-1].next_offset),
            producers=producers,
            transactions=txns,
            files=files,
        )

    # -- state -------------------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign (the high watermark: there are no replicas)."""
        return self.segments[-1].next_offset

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the oldest ongoing transaction, else the log end offset."""
        first = self._txns.first_unstable()
        return self.log_end_offset if first is None else first

    @property
    def size_bytes(self) -> int:
        """Bytes of all segments' logs."""
        return sum(segment.size for segment in self.segments)

    @property
    def fsync_count(self) -> int:
        """How many group-commit fsync passes completed (shared by concurrent ``sync()``)."""
        return self._commit.fsync_count

    def has_ongoing_transaction(self, producer_id: int) -> bool:
        """Whether the producer has written transactional data not yet committed or aborted."""
        return producer_id in self._txns.ongoing

    def aborted_transactions(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(producer_id, first_offset)`` of aborted transactions overlapping ``[start, end)``."""
        return self._txns.aborted(start, end)

    @property
    def _active(self) -> Segment:
        return self.segments[-1]

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosedError(f"partition log {self.directory} is closed")

    # -- writing -----------------------------------------------------------------------------

    def append(self, records: bytes, *, now_ms: int) -> AppendResult:
        """Store a producer's record set (one or more v2 batches) at the log end.

        All batches are validated before any is written. A retry of a stored idempotent batch
        returns its original offsets with ``duplicate=True``. The data is written but not
        fsynced: await ``sync()`` before acknowledging acks=all. Raises ``KafkaError`` with
        INVALID_REQUEST (empty), CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD (control
        batch, null key on a compacted topic), INVALID_PRODUCER_EPOCH,
        OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_TXN_STATE; ``StorageError`` on disk failure.
        """
        self._check_open()
        if not records:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "empty record set; send at least one batch")
        batches = split_batches(records, max_message_bytes=self.config.max_message_bytes)
        for header, batch in batches:
            if header.is_control:
                raise KafkaError(
                    ErrorCode.INVALID_RECORD,
                    "clients may not write control batches; end transactions via EndTxn",
                )
            keyless = null_key_indexes(batch) if self.config.compact else []
            if keyless:
                message = "compacted topics need a key on every record"
                raise KafkaError(
                    ErrorCode.INVALID_RECORD,
                    f"{message}; set a key or use a topic with cleanup.policy=delete",
                    record_errors=[(index, message) for index in keyless],
                )
        headers = [header for header, _ in batches]
        self._txns.check(headers)
        base = self.log_end_offset
        checked = self._producers.check(headers, base)
        if isinstance(checked, Duplicate):
            return AppendResult(
                base_offset=checked.base_offset,
                last_offset=checked.last_offset,
                log_start_offset=self.log_start_offset,
                duplicate=True,
            )
        count = sum(header.last_offset_delta + 1 for header in headers)
        self._maybe_roll(len(records), count)
        data = bytearray(records)
        offsets: list[int] = []
        pos, offset = 0, base
        for header in headers:
            set_base_offset(data, pos, offset)
            offsets.append(offset)
            pos += header.size
            offset += header.last_offset_delta + 1
        self._write(data, headers, offsets)
        self._producers.apply(checked)
        for header, first in zip(headers, offsets, strict=True):
            if header.is_transactional:
                self._txns.begin(header.producer_id, first)
        return AppendResult(
            base_offset=base, last_offset=offset - 1, log_start_offset=self.log_start_offset
        )

    def append_control(
        self,
        *,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        now_ms: int,
        coordinator_epoch: int = 0,
    ) -> int:
        """Write a COMMIT or ABORT marker ending the producer's transaction; its offset.

        Raises ``KafkaError(INVALID_PRODUCER_EPOCH)`` for an epoch older than the producer's.
        """
        self._check_open()
        self._producers.check_marker(producer_id, producer_epoch)
        offset = self.log_end_offset
        batch = control_batch(
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            commit=commit,
            base_offset=offset,
            timestamp_ms=now_ms,
            coordinator_epoch=coordinator_epoch,
        )
        self._maybe_roll(len(batch), 1)
        self._write(batch, [parse_header(batch)])
        self._producers.apply_marker(producer_id, producer_epoch)
        self._txns.end(producer_id, commit=commit, marker_offset=offset)
        return offset

    def _maybe_roll(self, size: int, count: int) -> None:
        active = self._active
        limit = min(self.config.segment_bytes, MAX_SEGMENT_BYTES)
        too_big = active.size + size > limit
        too_many = active.next_offset + count - 1 - active.base_offset > MAX_RELATIVE_OFFSET
        if active.size and (too_big or too_many):
            self.roll()

    def _write(
        self, data: bytes | bytearray, headers: list[BatchHeader], offsets: list[int] | None = None
    ) -> None:
        self._active.append(data, headers, offsets)
        self._commit.written(self._active)

    def roll(self) -> None:
        """Close the active segment and start a new one at the log end (no-op when empty)."""
        self._check_open()
        if self._active.size == 0:
            return
        try:
            segment = Segment.create(self.directory, self.log_end_offset, files=self._files)
        except OSError as exc:
            raise StorageError(f"cannot start a segment in {self.directory}: {exc}") from exc
        self.segments.append(segment)
        self._commit.created(segment)

    async def sync(self) -> None:
        """Return once everything appended before the call is on disk (group commit).

        Concurrent callers share fsyncs, which run off the event loop. Raises
        ``StorageError`` if an fsync failed (then every later call fails too).
        """
        await self._commit.sync()

    # -- reading -----------------------------------------------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        upper_bound: int | None = None,
        at_least_one: bool = True,
    ) -> bytes:
        """Whole batches from the one containing ``offset``, about ``max_bytes`` of them.

        The first batch is returned even when larger than ``max_bytes``, so consumers always
        progress — unless ``at_least_one`` is false (a later partition of a Fetch response,
        where the response limit is hard): then nothing larger than ``max_bytes`` is. No batch
        starting at or after ``upper_bound`` (the LSO for read_committed) is returned.
        ``offset == log_end_offset`` gives ``b""``. Raises ``KafkaError(OFFSET_OUT_OF_RANGE)``
        outside ``[log_start_offset, log_end_offset]``.
        """
        self._check_open()
        end = self.log_end_offset
        if not self.log_start_offset <= offset <= end:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"offset {offset} is outside [{self.log_start_offset}, {end}]; reset the "
                "consumer's position (auto.offset.reset)",
            )
        bound = end if upper_bound is None else min(upper_bound, end)
        chunks: list[bytes] = []
        budget = max_bytes
        first = bisect.bisect_right(self.segments, offset, key=lambda s: s.base_offset) - 1
        for segment in self.segments[max(first, 0) :]:
            if offset >= bound:
                break
            found = segment.find(offset)
            if found is None:
                continue  # the offset lies in a gap left by compaction: go on with the next
            pos, header = found
            if header.base_offset >= bound:
                break
            soft = at_least_one and not chunks
            length = min(segment.size - pos, max(budget, header.size) if soft else budget)
            if length < header.size:
                break
            data = segment.read(pos, length)
            used, bounded = _whole_batches(data, bound)
            chunks.append(data if used == len(data) else data[:used])
            budget -= used
            if bounded or pos + used < segment.size or budget <= 0:
                break
            offset = segment.next_offset
        return b"".join(chunks)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record stamped at or after ``timestamp_ms``.

        The record is taken from the first batch whose max timestamp reaches ``timestamp_ms``
        (ListOffsets); ``None`` when no batch does.
        """
        self._check_open()
        for segment in self.segments:
            for header, data in segment.find_timestamp(timestamp_ms):
                if header.last_offset < self.log_start_offset:
                    continue
                for offset, timestamp, _key, _value, _headers in iter_records(data):
                    if timestamp >= timestamp_ms and offset >= self.log_start_offset:
                        return offset, timestamp
        return None

    # -- cleaning ----------------------------------------------------------------------------

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset to ``offset`` (DeleteRecords); the new log start.

        ``-1`` means the high watermark. Whole segments below the new start are deleted.
        Raises ``KafkaError(OFFSET_OUT_OF_RANGE)`` past the log end offset.
        """
        self._check_open()
        if offset == -1:
            offset = self.log_end_offset
        if not 0 <= offset <= self.log_end_offset:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"cannot delete records before {offset}: the log ends at {self.log_end_offset}",
            )
        if offset > self.log_start_offset:
            write_snapshot(self.directory / _LOG_START_FILE, [{"log_start_offset": offset}])
            self.log_start_offset = offset
            closed = self.segments[:-1]
            self._drop_segments(sum(1 for s in closed if s.next_offset <= offset))
        return self.log_start_offset

    def enforce_retention(self, now_ms: int) -> int:
        """Delete the oldest closed segments beyond retention.ms or retention.bytes; bytes freed.

        Only for cleanup.policy delete (otherwise 0). A segment's age is its largest batch
        timestamp (its file's mtime when it has none); the active segment is never deleted.
        """
        self._check_open()
        config = self.config
        if not config.delete:
            return 0
        closed = self.segments[:-1]
        count = 0
        if config.retention_ms >= 0:
            while count < len(closed) and now_ms - _age_ms(closed[count]) > config.retention_ms:
                count += 1
        if config.retention_bytes >= 0:
            excess = self.size_bytes - sum(s.size for s in closed[:count]) - config.retention_bytes
            while count < len(closed) and excess >= closed[count].size:
                excess -= closed[count].size
                count += 1
        return self._drop_segments(count)

    def _drop_segments(self, count: int) -> int:
        if count == 0:
            return 0
        dropped, self.segments = self.segments[:count], self.segments[count:]
        for segment in dropped:
            self._commit.forget(segment)
            segment.delete()
        self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
        self._txns.forget_before(self.log_start_offset)
        return sum(segment.size for segment in dropped)

    def compact(self, now_ms: int) -> int:
        """Keep only the latest record per key in closed, stable segments; bytes freed.

        Only for cleanup.policy compact (otherwise 0). Aborted transactional records and
        tombstones older than delete.retention.ms go; offsets are preserved. Skips the work
        when nothing changed since the last pass and no tombstone or lag expired since.
        """
        self._check_open()
        if not self.config.compact:
            return 0
        fingerprint = (
            self.log_end_offset,
            self.last_stable_offset,
            self.config,
            tuple(segment.base_offset for segment in self.segments),
        )
        if fingerprint == self._compacted and now_ms < self._compact_recheck_ms:
            return 0
        # The rewrite replaces files: what was written to the originals must be on disk first.
        for segment in self.segments[:-1]:
            if self._commit.forget(segment):
                segment.fsync()
        result = _compaction.compact(
            self.segments,
            stable_offset=self.last_stable_offset,
            aborted=self._txns.aborted_ranges(),
            now_ms=now_ms,
            config=self.config,
        )
        self.segments[: result.replaced] = result.segments
        self._compacted = (*fingerprint[:3], tuple(s.base_offset for s in self.segments))
        self._compact_recheck_ms = result.recheck_at_ms
        return result.freed

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Flush and close every file; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            self._commit.flush_now()
        finally:
            for segment in self.segments:
                segment.close()
            self._commit.close()

    def destroy(self) -> None:
        """Close the log and delete its directory (DeleteTopics)."""
        self._closed = True
        for segment in self.segments:
            segment.close()
        self._commit.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _whole_batches(data: bytes, bound: int) -> tuple[int, bool]:
    """Bytes of the whole batches at the start of ``data`` that begin below ``bound``.

    Also whether ``bound`` stopped the walk. Reads only base offset and length per batch.
    """
    pos, size = 0, len(data)
    while pos + 12 <= size:
        base_offset, length = _BASE_AND_LENGTH.unpack_from(data, pos)
        if base_offset >= bound:
            return pos, True
        end = pos + 12 + length
        if end > size:
            break
        pos = end
    return pos, False


def _age_ms(segment: Segment) -> int:
    return segment.max_timestamp if segment.max_timestamp >= 0 else segment.mtime_ms()

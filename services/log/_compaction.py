"""Log compaction: keep only the latest record of each key in a partition's closed segments.

Only closed segments entirely below the last stable offset and older than
``min.compaction.lag.ms`` are rewritten. The key map (key -> latest offset) is built over the
whole stable log, active segment included, so an update in the active segment already removes
the older values from closed segments. Records of aborted transactions never count and are
dropped; tombstones go once older than ``delete.retention.ms``; control batches stay.

A rewritten batch keeps its base offset, lastOffsetDelta, producer id/epoch, base sequence and
attributes (offsets are preserved, gaps are allowed), so readers and producer-state recovery
see the same offset ranges as before. Each segment is written under a temporary name and
renamed over the original, so a crash leaves either the old or the new segment.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from services.log._batch import (
    COMPRESSION_MASK,
    MAGIC_V2,
    BatchHeader,
    Record,
    empty_batch,
    iter_records,
    parse_header,
    reseal,
    set_base_offset,
)
from services.log._config import TopicConfig
from services.log._segment import Segment

AbortedRanges = dict[int, list[tuple[int, int]]]
_ATTRIBUTES = struct.Struct(">h")
NEVER = 2**63 - 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Compacted:
    """What a compaction pass did."""

    segments: list[Segment]  # replaces the first ``replaced`` segments of the log
    replaced: int
    freed: int
    # The pass would do more from then on, even without new data (a tombstone expires, a
    # segment leaves the compaction lag).
    recheck_at_ms: int


def cleanable_count(
    segments: Sequence[Segment], *, stable_offset: int, now_ms: int, config: TopicConfig
) -> int:
    """How many leading closed segments may be compacted now."""
    count = 0
    for segment in segments[:-1]:
        if segment.next_offset > stable_offset:
            break
        if segment.max_timestamp > now_ms - config.min_compaction_lag_ms:
            break
        count += 1
    return count


def is_aborted(header: BatchHeader, aborted: AbortedRanges) -> bool:
    """Whether a data batch belongs to an aborted transaction."""
    if not header.is_transactional or header.is_control:
        return False
    return any(
        first <= header.base_offset <= last for first, last in aborted.get(header.producer_id, ())
    )


def latest_offsets(
    segments: Sequence[Segment], *, stable_offset: int, aborted: AbortedRanges
) -> dict[bytes, int]:
    """Key -> offset of its latest committed record below ``stable_offset``."""
    latest: dict[bytes, int] = {}
    for segment in segments:
        for _pos, header, data in segment.batches(with_data=True):
            if header.base_offset >= stable_offset:
                return latest
            if data is None or header.is_control or is_aborted(header, aborted):
                continue
            for offset, _ts, key, _value, _headers in iter_records(data):
                if key is not None:
                    latest[key] = offset
    return latest


def compact(
    segments: Sequence[Segment],
    *,
    stable_offset: int,
    aborted: AbortedRanges,
    now_ms: int,
    config: TopicConfig,
) -> Compacted:
    """Rewrite the cleanable segments; the caller swaps in ``Compacted.segments``."""
    count = cleanable_count(segments, stable_offset=stable_offset, now_ms=now_ms, config=config)
    recheck = NEVER
    if count < len(segments) - 1 and segments[count].next_offset <= stable_offset:
        recheck = segments[count].max_timestamp + config.min_compaction_lag_ms + 1
    if count == 0:
        return Compacted(segments=[], replaced=0, freed=0, recheck_at_ms=recheck)
    latest = latest_offsets(segments, stable_offset=stable_offset, aborted=aborted)
    horizon = now_ms - config.delete_retention_ms
    cleaned: list[Segment] = []
    freed = 0
    for index, old in enumerate(segments[:count]):
        new = Segment.create(
            old.directory, old.base_offset, files=old.open_files, suffix=".cleaned"
        )
        last: BatchHeader | None = None
        for _pos, header, data in old.batches(with_data=True):
            last = header
            if data is None:
                continue
            if header.is_control:
                new.append(data, [header])
                continue
            if is_aborted(header, aborted):
                continue
            records = list(iter_records(data))
            # Per key only the latest record; tombstones only until delete.retention.ms.
            kept = [
                (offset, timestamp, key, value, headers)
                for offset, timestamp, key, value, headers in records
                if key is not None
                and latest.get(key) == offset
                and (value is not None or timestamp > horizon)
            ]
            for _offset, timestamp, _key, value, _headers in kept:
                if value is None:
                    recheck = min(recheck, timestamp + config.delete_retention_ms + 1)
            if not kept:
                continue
            batch = bytes(data) if len(kept) == len(records) else _rebuild(header, kept)
            new.append(batch, [parse_header(batch)])
        if index == count - 1 and last is not None and new.next_offset <= last.last_offset:
            # The uncleaned log after this segment may hold no batch at all (an empty active
            # segment): an empty batch keeps the offsets up to it covered, so a consumer in
            # that range is moved past it instead of fetching nothing forever.
            placeholder = empty_batch(last)
            new.append(placeholder, [parse_header(placeholder)])
        freed += old.size - new.size
        if new.size == 0 and index > 0:
            # An emptied segment is dropped, except the first: it keeps the log's start offset.
            new.delete()
            old.delete()
            continue
        new.install()
        old.close()
        cleaned.append(new)
    return Compacted(segments=cleaned, replaced=count, freed=freed, recheck_at_ms=recheck)


def _rebuild(header: BatchHeader, records: Sequence[Record]) -> bytes:
    """A batch holding ``records`` with the original batch's identity and offset range."""
    builder = DefaultRecordBatchBuilder(
        magic=MAGIC_V2,
        compression_type=header.compression,
        is_transactional=int(header.is_transactional),
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        batch_size=2**31 - 1,
    )
    for offset, timestamp, key, value, headers in records:
        builder.append(offset - header.base_offset, timestamp, key, value, headers)
    batch = bytearray(builder.build())
    # The builder may fall back to no compression; everything else (timestamp type, the
    # transactional bit) comes from the original, as does the offset range it covered.
    codec = _ATTRIBUTES.unpack_from(batch, 21)[0] & COMPRESSION_MASK
    reseal(
        batch,
        attributes=(header.attributes & ~COMPRESSION_MASK) | codec,
        last_offset_delta=header.last_offset_delta,
    )
    set_base_offset(batch, 0, header.base_offset)
    return bytes(batch)

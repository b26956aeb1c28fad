"""Record batches (magic v2): the unit the log stores, indexes and serves.

The broker never re-encodes what producers send: a batch is validated (framing, CRC, size),
its base offset is patched, and the bytes are stored and served as received. Only the cleaner
decodes records, through aiokafka's ``DefaultRecordBatch``, which also handles compression.

Header layout (61 bytes, big-endian)::

    baseOffset int64 @0   batchLength int32 @8 (bytes after this field)
    partitionLeaderEpoch int32 @12   magic int8 @16   crc uint32 @17 (CRC-32C of @21..end)
    attributes int16 @21  lastOffsetDelta int32 @23   firstTimestamp int64 @27
    maxTimestamp int64 @35   producerId int64 @43   producerEpoch int16 @51
    baseSequence int32 @53   recordCount int32 @57
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from services.log._errors import ErrorCode, KafkaError

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
# Bytes of a batch that batchLength does not count (baseOffset and batchLength themselves).
LOG_OVERHEAD = 12
# The smallest batchLength a well-formed v2 header can carry.
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
CRC_START = 21
MAGIC_V2 = 2

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20

_BASE_OFFSET = struct.Struct(">q")
_ATTRIBUTES = struct.Struct(">h")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_CRC = struct.Struct(">I")
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")

Header = list[tuple[str, bytes | None]]
Record = tuple[int, int, bytes | None, bytes | None, Header]


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchHeader:
    """The fixed 61-byte header of a v2 record batch."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def compression(self) -> int:
        """The codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd."""
        return self.attributes & COMPRESSION_MASK


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """The header of the batch starting at ``buf[pos]``.

    Raises ``KafkaError(CORRUPT_MESSAGE)`` when fewer than 61 bytes are left.
    """
    if len(buf) - pos < HEADER_SIZE:
        raise KafkaError(
            ErrorCode.CORRUPT_MESSAGE,
            f"a record batch header needs {HEADER_SIZE} bytes, only {len(buf) - pos} are left; "
            "send whole v2 record batches",
        )
    (
        base_offset,
        batch_length,
        leader_epoch,
        magic,
        crc,
        attributes,
        last_offset_delta,
        first_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count,
    ) = HEADER.unpack_from(buf, pos)
    return BatchHeader(
        base_offset=base_offset,
        batch_length=batch_length,
        partition_leader_epoch=leader_epoch,
        magic=magic,
        crc=crc,
        attributes=attributes,
        last_offset_delta=last_offset_delta,
        first_timestamp=first_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        record_count=record_count,
    )


def split_batches(data: bytes, *, max_message_bytes: int) -> list[tuple[BatchHeader, bytes]]:
    """Validate a producer's record set and cut it into ``(header, batch bytes)`` pairs.

    Raises ``KafkaError`` with ``CORRUPT_MESSAGE`` (not magic v2, bad framing, CRC mismatch,
    record count inconsistent with the offset delta) or ``MESSAGE_TOO_LARGE`` (a batch larger
    than ``max_message_bytes``). Nothing is returned unless the whole set is valid.
    """
    batches: list[tuple[BatchHeader, bytes]] = []
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        header = parse_header(data, pos)
        if header.magic != MAGIC_V2:
            raise KafkaError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} has magic {header.magic}; this broker stores only "
                "magic v2 batches, upgrade the client (Kafka >= 0.11 protocol)",
            )
        if header.batch_length < MIN_BATCH_LENGTH or pos + header.size > len(data):
            raise KafkaError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} claims {header.batch_length} bytes but "
                f"{len(data) - pos - LOG_OVERHEAD} follow; the request was truncated or mangled",
            )
        if header.size > max_message_bytes:
            raise KafkaError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"record batch of {header.size} bytes exceeds max.message.bytes "
                f"{max_message_bytes}; send smaller batches or raise the topic's limit",
            )
        end = pos + header.size
        if crc32c.crc32c(view[pos + CRC_START : end]) != header.crc:
            raise KafkaError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} fails its CRC-32C check; resend it",
            )
        if header.record_count < 1 or header.last_offset_delta != header.record_count - 1:
            raise KafkaError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} has {header.record_count} records but "
                f"lastOffsetDelta {header.last_offset_delta}; a produced batch must hold "
                "records with consecutive offset deltas starting at 0",
            )
        batches.append((header, data[pos:end]))
        pos = end
    return batches


def with_base_offset(batch: bytes | bytearray, base_offset: int) -> bytes:
    """The batch with its base offset replaced (the CRC does not cover it)."""
    return _BASE_OFFSET.pack(base_offset) + bytes(batch[8:])


def set_base_offset(buf: bytearray, pos: int, base_offset: int) -> None:
    """Patch the base offset of the batch at ``buf[pos]`` in place."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)


def reseal(
    batch: bytearray, *, attributes: int | None = None, last_offset_delta: int | None = None
) -> None:
    """Overwrite header fields covered by the CRC, then recompute the CRC in place."""
    if attributes is not None:
        _ATTRIBUTES.pack_into(batch, 21, attributes)
    if last_offset_delta is not None:
        _LAST_OFFSET_DELTA.pack_into(batch, 23, last_offset_delta)
    _CRC.pack_into(batch, 17, crc32c.crc32c(memoryview(batch)[CRC_START:]))


def empty_batch(header: BatchHeader) -> bytes:
    """A batch with the identity and offset range of ``header`` but no records.

    Kafka keeps such batches where compaction removed every record but the offsets they
    covered must stay readable: consumers advance to the batch's last offset + 1.
    """
    batch = bytearray(
        HEADER.pack(
            header.base_offset,
            MIN_BATCH_LENGTH,
            header.partition_leader_epoch,
            MAGIC_V2,
            0,
            header.attributes & ~COMPRESSION_MASK,
            header.last_offset_delta,
            header.first_timestamp,
            header.max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            0,
        )
    )
    reseal(batch)
    return bytes(batch)


def control_batch(
    *,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    base_offset: int,
    timestamp_ms: int,
    coordinator_epoch: int = 0,
) -> bytes:
    """A transaction marker: a control batch holding one COMMIT or ABORT control record."""
    # aiokafka's builder cannot set the control bit (only brokers write control batches), so
    # the batch is built as transactional, then the bit is added and the CRC recomputed.
    builder = DefaultRecordBatchBuilder(
        magic=MAGIC_V2,
        compression_type=0,
        is_transactional=1,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    builder.append(
        0,
        timestamp_ms,
        _CONTROL_KEY.pack(0, 1 if commit else 0),
        _CONTROL_VALUE.pack(0, coordinator_epoch),
        [],
    )
    batch = bytearray(builder.build())
    reseal(batch, attributes=TRANSACTIONAL_MASK | CONTROL_MASK)
    set_base_offset(batch, 0, base_offset)
    return bytes(batch)


def control_type(batch: bytes | bytearray | memoryview) -> int:
    """The type of a control batch's record: 0 abort, 1 commit (other values are future types)."""
    for _offset, _ts, key, _value, _headers in iter_records(batch):
        if key is None or len(key) < _CONTROL_KEY.size:
            break
        return int(_CONTROL_KEY.unpack_from(key)[1])
    raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "control batch without a control record key")


def iter_records(batch: bytes | bytearray | memoryview) -> Iterator[Record]:
    """``(offset, timestamp, key, value, headers)`` of each record, decompressing as needed.

    Raises ``KafkaError(CORRUPT_MESSAGE)`` when the records cannot be decoded.
    """
    try:
        for record in DefaultRecordBatch(bytes(batch)):
            yield record.offset, record.timestamp, record.key, record.value, record.headers
    # Compressed payloads fail inside the codecs with their own error types.
    except (AIOKafkaError, ValueError, IndexError, EOFError, OSError, zlib.error) as exc:
        raise KafkaError(
            ErrorCode.CORRUPT_MESSAGE, f"cannot decode the batch's records: {exc}"
        ) from exc


def has_null_key(batch: bytes | bytearray | memoryview) -> bool:
    """Whether any record of the batch has a null key (forbidden on compacted topics)."""
    return bool(null_key_indexes(batch))


def null_key_indexes(batch: bytes | bytearray | memoryview) -> list[int]:
    """Positions within the batch of the records whose key is null."""
    return [index for index, (_o, _t, key, _v, _h) in enumerate(iter_records(batch)) if key is None]

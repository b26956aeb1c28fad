"""The storage of one partition: segments, recovery, idempotence, transactions, cleaning."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from aiokafka.record.control_record import COMMIT_MARKER, ControlRecord
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from services.log._batch import (
    control_batch,
    has_null_key,
    iter_records,
    parse_header,
    split_batches,
    with_base_offset,
)
from services.log._config import TopicConfig
from services.log._errors import ErrorCode, KafkaError
from services.log._partition import PartitionLog
from services.log._producer_state import last_sequence

Value = bytes | None
KeyValue = tuple[bytes | None, Value]


def make_batch(
    values: Sequence[Value | KeyValue],
    *,
    timestamp: int = 1_000,
    producer_id: int = -1,
    epoch: int = -1,
    sequence: int = -1,
    transactional: bool = False,
    compression: int = 0,
) -> bytes:
    """A v2 batch as a producer would send it; plain values get the key ``k<i>``."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=int(transactional),
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        batch_size=1 << 30,
    )
    for i, item in enumerate(values):
        key, value = item if isinstance(item, tuple) else (b"k%d" % i, item)
        builder.append(i, timestamp, key, value, [])
    return bytes(builder.build())


def make_txn_batch(values: Sequence[Value], *, producer_id: int, sequence: int) -> bytes:
    """A transactional batch of epoch 0."""
    return make_batch(
        values, producer_id=producer_id, epoch=0, sequence=sequence, transactional=True
    )


def batches_of(data: bytes) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        size = parse_header(data, pos).size
        yield data[pos : pos + size]
        pos += size


def records_of(data: bytes) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of the data records in ``data`` (control batches skipped)."""
    return [
        (offset, key, value)
        for batch in batches_of(data)
        if not parse_header(batch).is_control
        for offset, _ts, key, value, _headers in iter_records(batch)
    ]


def base_offsets(data: bytes) -> list[int]:
    return [parse_header(batch).base_offset for batch in batches_of(data)]


def open_log(path: Path, **config: object) -> PartitionLog:
    return PartitionLog.open(path, config=TopicConfig(**config))  # type: ignore[arg-type]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PartitionLog]:
    """A partition with default settings in a fresh directory."""
    opened = open_log(tmp_path / "p")
    yield opened
    opened.close()


def test_append_assigns_contiguous_offsets_and_read_returns_the_batches(log: PartitionLog) -> None:
    """Batches are stored as sent, with base offsets assigned contiguously."""
    first = log.append(make_batch([b"a", b"b", b"c"]), now_ms=0)
    second = log.append(make_batch([b"d"]) + make_batch([b"e", b"f"]), now_ms=0)
    assert (first.base_offset, first.last_offset, first.duplicate) == (0, 2, False)
    assert (second.base_offset, second.last_offset) == (3, 5)
    assert log.log_end_offset == log.last_stable_offset == 6
    data = log.read(0, 1 << 20)
    assert base_offsets(data) == [0, 3, 4]
    assert [v for _o, _k, v in records_of(data)] == [b"a", b"b", b"c", b"d", b"e", b"f"]
    assert [o for o, _k, _v in records_of(data)] == list(range(6))


def test_read_starts_with_the_batch_containing_the_offset(log: PartitionLog) -> None:
    """A read from the middle of a batch returns that whole batch first."""
    log.append(make_batch([b"a", b"b", b"c"]), now_ms=0)
    log.append(make_batch([b"d", b"e"]), now_ms=0)
    assert base_offsets(log.read(4, 1 << 20)) == [3]
    assert base_offsets(log.read(2, 1 << 20)) == [0, 3]


def test_a_corrupt_batch_is_refused_and_nothing_is_stored(log: PartitionLog) -> None:
    """A CRC mismatch in any batch of a request rejects the whole request."""
    bad = bytearray(make_batch([b"x", b"y"]))
    bad[-1] ^= 0xFF
    with pytest.raises(KafkaError) as caught:
        log.append(make_batch([b"ok"]) + bytes(bad), now_ms=0)
    assert caught.value.code == ErrorCode.CORRUPT_MESSAGE
    assert (log.log_end_offset, log.size_bytes) == (0, 0)


def test_malformed_input_gets_the_matching_error_code(log: PartitionLog) -> None:
    """Empty, truncated, non-v2 and oversized record sets each get their Kafka error."""
    good = make_batch([b"x"])
    old_magic = bytearray(good)
    old_magic[16] = 1
    cases = {
        b"": ErrorCode.INVALID_REQUEST,
        good[:-3]: ErrorCode.CORRUPT_MESSAGE,
        bytes(old_magic): ErrorCode.CORRUPT_MESSAGE,
        make_batch([b"v" * 2000]): ErrorCode.MESSAGE_TOO_LARGE,
    }
    log.config = TopicConfig(max_message_bytes=1000)
    for data, code in cases.items():
        with pytest.raises(KafkaError) as caught:
            log.append(data, now_ms=0)
        assert caught.value.code == code
    assert log.log_end_offset == 0


def test_max_bytes_counts_whole_batches_but_always_returns_the_first(log: PartitionLog) -> None:
    """max_bytes never splits a batch, yet an oversized first batch is still returned."""
    for i in range(3):
        log.append(make_batch([b"v" * 100] * (i + 1)), now_ms=0)
    sizes = [len(b) for b in batches_of(log.read(0, 1 << 20))]
    assert base_offsets(log.read(0, 1)) == [0]
    assert base_offsets(log.read(0, sizes[0] + sizes[1])) == [0, 1]
    assert base_offsets(log.read(0, sizes[0] + sizes[1] - 1)) == [0]
    assert base_offsets(log.read(3, 1)) == [3]


def test_offsets_outside_the_log_are_out_of_range(log: PartitionLog) -> None:
    """Reading below the log start or past the log end fails; at the log end it is empty."""
    log.append(make_batch([b"a", b"b"]), now_ms=0)
    for offset in (-1, 3):
        with pytest.raises(KafkaError) as caught:
            log.read(offset, 100)
        assert caught.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert log.read(2, 100) == b""


def test_upper_bound_stops_before_batches_starting_at_or_after_it(log: PartitionLog) -> None:
    """Batches whose base offset is at or past upper_bound are never returned."""
    for _ in range(3):
        log.append(make_batch([b"a", b"b"]), now_ms=0)
    assert base_offsets(log.read(0, 1 << 20, upper_bound=3)) == [0, 2]
    assert base_offsets(log.read(0, 1 << 20, upper_bound=2)) == [0]
    assert log.read(4, 1 << 20, upper_bound=4) == b""


def test_segments_roll_and_reads_cross_them(tmp_path: Path) -> None:
    """A full segment rolls; a read continues into the following segments."""
    log = open_log(tmp_path / "p", segment_bytes=1000)
    for i in range(10):
        log.append(make_batch([b"%03d" % i + b"v" * 300]), now_ms=0)
    assert len(list((tmp_path / "p").glob("*.log"))) == len(log.segments) > 3
    assert base_offsets(log.read(0, 1 << 20)) == list(range(10))
    assert base_offsets(log.read(5, 1 << 20)) == list(range(5, 10))
    log.close()


def test_reopen_restores_offsets_data_and_continues(tmp_path: Path) -> None:
    """After close and open the log has the same content and appends continue after it."""
    log = open_log(tmp_path / "p", segment_bytes=2000)
    for i in range(20):
        log.append(make_batch([b"%d" % i] * 3, timestamp=i), now_ms=0)
    before = log.read(0, 1 << 20)
    log.close()
    log.close()
    reopened = open_log(tmp_path / "p", segment_bytes=2000)
    assert reopened.log_end_offset == 60
    assert reopened.read(0, 1 << 20) == before
    assert reopened.append(make_batch([b"next"]), now_ms=0).base_offset == 60
    reopened.close()


def test_a_torn_tail_is_cut_off_on_open(tmp_path: Path) -> None:
    """A batch cut short by a crash is removed; earlier batches and offsets survive."""
    log = open_log(tmp_path / "p")
    for i in range(3):
        log.append(make_batch([b"%d" % i] * 2), now_ms=0)
    log.close()
    (segment,) = (tmp_path / "p").glob("*.log")
    os.truncate(segment, segment.stat().st_size - 5)
    reopened = open_log(tmp_path / "p")
    assert reopened.log_end_offset == 4
    assert base_offsets(reopened.read(0, 1 << 20)) == [0, 2]
    assert reopened.append(make_batch([b"again"]), now_ms=0).base_offset == 4
    reopened.close()


def test_a_corrupt_byte_in_the_active_segment_cuts_the_log_there(tmp_path: Path) -> None:
    """A batch failing its CRC on open is never served, nor anything after it."""
    log = open_log(tmp_path / "p")
    for i in range(3):
        log.append(make_batch([b"value-%d" % i]), now_ms=0)
    second = len(make_batch([b"value-0"]))
    log.close()
    (segment,) = (tmp_path / "p").glob("*.log")
    with open(segment, "r+b") as file:
        file.seek(second + 70)
        byte = file.read(1)
        file.seek(second + 70)
        file.write(bytes([byte[0] ^ 0x01]))
    reopened = open_log(tmp_path / "p")
    assert reopened.log_end_offset == 1
    assert records_of(reopened.read(0, 1 << 20)) == [(0, b"k0", b"value-0")]
    reopened.close()


def test_a_closed_segment_without_index_is_verified_and_later_segments_dropped(
    tmp_path: Path,
) -> None:
    """A missing index makes recovery check CRCs; a bad batch drops everything after it."""
    log = open_log(tmp_path / "p", segment_bytes=1200)
    for i in range(12):
        log.append(make_batch([b"%02d" % i + b"v" * 300]), now_ms=0)
    assert len(log.segments) >= 3
    first_end = log.segments[0].next_offset
    log.close()
    logs = sorted((tmp_path / "p").glob("*.log"))
    logs[0].with_suffix(".index").unlink()
    data = bytearray(logs[0].read_bytes())
    data[-10] ^= 0x01  # inside the last batch of the first segment
    logs[0].write_bytes(bytes(data))
    reopened = open_log(tmp_path / "p", segment_bytes=1200)
    assert reopened.log_end_offset == first_end - 1
    assert len(list((tmp_path / "p").glob("*.log"))) == 1
    assert logs[0].with_suffix(".index").exists()
    assert base_offsets(reopened.read(0, 1 << 20)) == list(range(first_end - 1))
    reopened.close()


def test_damage_inside_a_closed_segment_is_cut_with_crc_checks(tmp_path: Path) -> None:
    """Zeroed bytes mid-segment cut the log at the last intact batch, which stays durable."""
    log = open_log(tmp_path / "p", segment_bytes=1200)
    for i in range(12):
        log.append(make_batch([b"%02d" % i + b"v" * 300]), now_ms=0)
    log.close()
    second = sorted((tmp_path / "p").glob("*.log"))[1]
    data = bytearray(second.read_bytes())
    data[500:] = bytes(len(data) - 500)  # inside the second batch: its header stays intact
    second.write_bytes(bytes(data))
    reopened = open_log(tmp_path / "p", segment_bytes=1200)
    end = reopened.log_end_offset
    assert base_offsets(reopened.read(0, 1 << 20)) == list(range(end))
    assert reopened.segments[-1].size < 500
    assert reopened.append(make_batch([b"new"]), now_ms=0).base_offset == end
    reopened.close()
    again = open_log(tmp_path / "p", segment_bytes=1200)
    assert base_offsets(again.read(0, 1 << 20)) == list(range(end + 1))
    again.close()


def test_a_rebuilt_index_serves_reads_from_any_offset(tmp_path: Path) -> None:
    """Index files lost or stale are recomputed from the log on open."""
    log = open_log(tmp_path / "p")
    for i in range(300):
        log.append(make_batch([b"%03d" % i + b"v" * 100]), now_ms=0)
    log.close()
    (index,) = (tmp_path / "p").glob("*.index")
    expected = index.read_bytes()
    assert len(expected) > 16
    index.write_bytes(expected[:-12])
    (tmp_path / "p" / index.with_suffix(".timeindex").name).unlink()
    reopened = open_log(tmp_path / "p")
    assert index.read_bytes() == expected
    for offset in (0, 57, 150, 299):
        assert base_offsets(reopened.read(offset, 1))[0] == offset
    reopened.close()


def test_an_idempotent_retry_is_a_duplicate_with_its_original_offsets(log: PartitionLog) -> None:
    """A resent batch is not stored again; the answer carries where it was stored."""
    log.append(make_batch([b"other"]), now_ms=0)
    first = log.append(make_batch([b"a", b"b"], producer_id=5, epoch=0, sequence=0), now_ms=0)
    log.append(make_batch([b"c"], producer_id=5, epoch=0, sequence=2), now_ms=0)
    retry = log.append(make_batch([b"a", b"b"], producer_id=5, epoch=0, sequence=0), now_ms=0)
    assert (retry.base_offset, retry.last_offset, retry.duplicate) == (1, 2, True)
    assert (first.base_offset, first.duplicate) == (1, False)
    assert log.log_end_offset == 4


def test_duplicates_are_still_detected_after_reopen(tmp_path: Path) -> None:
    """Producer state is rebuilt from the log on open."""
    log = open_log(tmp_path / "p")
    log.append(make_batch([b"a"], producer_id=5, epoch=3, sequence=0), now_ms=0)
    log.close()
    reopened = open_log(tmp_path / "p")
    retry = reopened.append(make_batch([b"a"], producer_id=5, epoch=3, sequence=0), now_ms=0)
    assert (retry.base_offset, retry.duplicate) == (0, True)
    nxt = reopened.append(make_batch([b"b"], producer_id=5, epoch=3, sequence=1), now_ms=0)
    assert (nxt.base_offset, nxt.duplicate) == (1, False)
    reopened.close()


def test_sequence_gaps_are_out_of_order(log: PartitionLog) -> None:
    """A gap in sequences, or a new producer not starting at 0, is refused."""
    with pytest.raises(KafkaError) as caught:
        log.append(make_batch([b"a"], producer_id=1, epoch=0, sequence=3), now_ms=0)
    assert caught.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    log.append(make_batch([b"a", b"b"], producer_id=1, epoch=0, sequence=0), now_ms=0)
    with pytest.raises(KafkaError) as caught:
        log.append(make_batch([b"c"], producer_id=1, epoch=0, sequence=3), now_ms=0)
    assert caught.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(make_batch([b"c"], producer_id=1, epoch=0, sequence=2), now_ms=0)


def test_sequences_wrap_around_after_int32_max() -> None:
    """After sequence 2**31-1 comes 0, also inside a batch."""
    assert last_sequence(2**31 - 2, 3) == 1
    assert last_sequence(2**31 - 1, 1) == 0
    assert last_sequence(5, 2) == 7


def test_epochs_fence_older_producers_and_restart_sequences(log: PartitionLog) -> None:
    """An older epoch is fenced; a newer epoch must start again at sequence 0."""
    log.append(make_batch([b"a"], producer_id=2, epoch=1, sequence=0), now_ms=0)
    with pytest.raises(KafkaError) as caught:
        log.append(make_batch([b"b"], producer_id=2, epoch=0, sequence=1), now_ms=0)
    assert caught.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    with pytest.raises(KafkaError) as caught:
        log.append(make_batch([b"b"], producer_id=2, epoch=2, sequence=1), now_ms=0)
    assert caught.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append(make_batch([b"b"], producer_id=2, epoch=2, sequence=0), now_ms=0)


def test_a_multi_batch_append_is_all_or_nothing(log: PartitionLog) -> None:
    """When one batch of a request is out of order, none of them is stored."""
    good = make_batch([b"a"], producer_id=3, epoch=0, sequence=0)
    gap = make_batch([b"b"], producer_id=3, epoch=0, sequence=5)
    with pytest.raises(KafkaError):
        log.append(good + gap, now_ms=0)
    assert log.log_end_offset == 0
    assert log.append(good, now_ms=0).base_offset == 0


def test_transactions_hold_back_the_lso_and_aborts_are_indexed(tmp_path: Path) -> None:
    """Ongoing transactions pin the LSO; aborted ones are reported for read_committed."""
    log = open_log(tmp_path / "p")
    log.append(make_batch([b"plain"]), now_ms=0)
    log.append(make_txn_batch([b"t1", b"t2"], producer_id=7, sequence=0), now_ms=0)
    log.append(make_txn_batch([b"u1"], producer_id=8, sequence=0), now_ms=0)
    assert log.has_ongoing_transaction(7)
    assert log.has_ongoing_transaction(8)
    assert log.last_stable_offset == 1
    assert base_offsets(log.read(0, 1 << 20, upper_bound=log.last_stable_offset)) == [0]
    abort_at = log.append_control(producer_id=7, producer_epoch=0, commit=False, now_ms=5)
    assert (abort_at, log.last_stable_offset) == (4, 3)
    log.append_control(producer_id=8, producer_epoch=0, commit=True, now_ms=5)
    assert log.last_stable_offset == log.log_end_offset == 6
    assert not log.has_ongoing_transaction(7)
    assert log.aborted_transactions(0, 6) == [(7, 1)]
    assert log.aborted_transactions(5, 6) == []
    assert log.aborted_transactions(0, 1) == []
    log.close()
    reopened = open_log(tmp_path / "p")
    assert reopened.aborted_transactions(0, 6) == [(7, 1)]
    assert reopened.last_stable_offset == 6
    reopened.append(make_txn_batch([b"t3"], producer_id=7, sequence=2), now_ms=0)
    assert reopened.last_stable_offset == 6
    reopened.close()


def test_a_fenced_coordinator_cannot_write_markers(log: PartitionLog) -> None:
    """A marker with an epoch older than the producer's is refused."""
    log.append(make_batch([b"t"], producer_id=7, epoch=4, sequence=0, transactional=True), now_ms=0)
    with pytest.raises(KafkaError) as caught:
        log.append_control(producer_id=7, producer_epoch=3, commit=True, now_ms=0)
    assert caught.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert log.has_ongoing_transaction(7)


def test_control_batches_decode_as_control_records() -> None:
    """The marker is a transactional control batch whose record aiokafka parses."""
    data = control_batch(
        producer_id=9,
        producer_epoch=2,
        commit=True,
        base_offset=42,
        timestamp_ms=7,
        coordinator_epoch=5,
    )
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    assert batch.is_control_batch
    assert batch.is_transactional
    assert (batch.base_offset, batch.producer_id, batch.producer_epoch) == (42, 9, 2)
    (record,) = list(batch)
    assert ControlRecord.parse(record.key) == COMMIT_MARKER
    assert record.value == b"\x00\x00\x00\x00\x00\x05"
    assert split_batches(with_base_offset(data, 0), max_message_bytes=1000)[0][0].is_control


def test_clients_cannot_write_control_batches(log: PartitionLog) -> None:
    """A produced control batch is rejected as an invalid record."""
    marker = control_batch(
        producer_id=9, producer_epoch=0, commit=True, base_offset=0, timestamp_ms=0
    )
    with pytest.raises(KafkaError) as caught:
        log.append(marker, now_ms=0)
    assert caught.value.code == ErrorCode.INVALID_RECORD


def test_offset_for_timestamp_finds_the_first_record_at_or_after_it(tmp_path: Path) -> None:
    """The answer matches a brute-force search, across segments and time-index entries."""
    log = open_log(tmp_path / "p", segment_bytes=20_000)
    stamps = [1000 + 10 * (i // 3) for i in range(600)]  # repeats: the max grows in steps
    for ts in stamps:
        log.append(make_batch([b"v" * 100], timestamp=ts), now_ms=0)
    assert len(log.segments) > 2
    for wanted in (0, 1000, 1001, 1500, 1990, 2990, 2991):
        expected = next(((i, ts) for i, ts in enumerate(stamps) if ts >= wanted), None)
        assert log.offset_for_timestamp(wanted) == expected
    log.close()


def test_retention_by_time_deletes_old_closed_segments(tmp_path: Path) -> None:
    """Closed segments older than retention.ms go and the log start moves up."""
    log = open_log(tmp_path / "p", segment_bytes=1000, retention_ms=10_000)
    for i in range(8):
        log.append(make_batch([b"v" * 300], timestamp=1000 * i), now_ms=0)
    sizes = {s.base_offset: s.size for s in log.segments}
    freed = log.enforce_retention(now_ms=14_500)
    assert freed == sizes[0] + sizes[2]
    assert log.log_start_offset == 4
    with pytest.raises(KafkaError):
        log.read(3, 100)
    assert base_offsets(log.read(4, 1 << 20)) == [4, 5, 6, 7]
    assert log.enforce_retention(now_ms=10**9) > 0
    assert log.log_start_offset == log.segments[-1].base_offset
    log.close()


def test_retention_by_bytes_keeps_the_newest_segments(tmp_path: Path) -> None:
    """Oldest closed segments go while the log exceeds retention.bytes."""
    log = open_log(tmp_path / "p", segment_bytes=1000, retention_bytes=2000)
    for _ in range(10):
        log.append(make_batch([b"v" * 300]), now_ms=0)
    log.enforce_retention(now_ms=0)
    assert 2000 <= log.size_bytes < 2000 + log.segments[0].size
    assert log.log_start_offset == log.segments[0].base_offset > 0
    log.close()


def test_delete_records_moves_the_log_start_durably(tmp_path: Path) -> None:
    """DeleteRecords advances the log start, drops whole segments and survives reopen."""
    log = open_log(tmp_path / "p", segment_bytes=1000)
    for _ in range(6):
        log.append(make_batch([b"v" * 300]), now_ms=0)
    assert log.delete_records_before(3) == 3
    assert log.segments[0].base_offset == 2
    with pytest.raises(KafkaError):
        log.delete_records_before(7)
    log.close()
    reopened = open_log(tmp_path / "p", segment_bytes=1000)
    assert reopened.log_start_offset == 3
    assert base_offsets(reopened.read(3, 1 << 20)) == [3, 4, 5]
    reopened.close()


def test_compaction_keeps_exactly_the_latest_value_per_key(tmp_path: Path) -> None:
    """Older values go, also when the newest is in the active segment; offsets are kept."""
    log = open_log(tmp_path / "p", cleanup_policy="compact", delete_retention_ms=1000)
    log.append(make_batch([(b"a", b"a1"), (b"b", b"b1"), (b"c", b"c1")], timestamp=0), now_ms=0)
    log.append(make_batch([(b"a", b"a2"), (b"b", None)], timestamp=500), now_ms=0)
    log.roll()
    log.append(make_batch([(b"d", b"d1"), (b"a", b"a3")], timestamp=600), now_ms=0)
    log.roll()
    log.append(make_batch([(b"c", b"c2")], timestamp=700), now_ms=0)
    freed = log.compact(now_ms=1000)
    assert freed > 0
    assert records_of(log.read(0, 1 << 20)) == [
        (4, b"b", None),
        (5, b"d", b"d1"),
        (6, b"a", b"a3"),
        (7, b"c", b"c2"),
    ]
    assert log.log_end_offset == 8
    assert log.compact(now_ms=1000) == 0
    log.close()
    reopened = open_log(tmp_path / "p", cleanup_policy="compact", delete_retention_ms=1000)
    assert [k for _o, k, _v in records_of(reopened.read(0, 1 << 20))] == [b"b", b"d", b"a", b"c"]
    reopened.compact(now_ms=10_000)  # the tombstone has expired
    assert records_of(reopened.read(0, 1 << 20)) == [
        (5, b"d", b"d1"),
        (6, b"a", b"a3"),
        (7, b"c", b"c2"),
    ]
    assert reopened.append(make_batch([(b"a", b"a4")]), now_ms=0).base_offset == 8
    reopened.close()


def test_compaction_keeps_the_offsets_of_a_removed_log_tail_readable(tmp_path: Path) -> None:
    """When the newest records vanish, an empty batch still moves consumers to the log end."""
    log = open_log(tmp_path / "p", cleanup_policy="compact", delete_retention_ms=0)
    log.append(make_batch([(b"a", b"1")], timestamp=0), now_ms=0)
    log.append(make_batch([(b"b", b"1")], timestamp=0), now_ms=0)
    log.append(make_batch([(b"b", None)], timestamp=0), now_ms=0)
    log.roll()
    log.compact(now_ms=1000)
    assert records_of(log.read(0, 1 << 20)) == [(0, b"a", b"1")]
    (tail,) = list(batches_of(log.read(1, 1 << 20)))
    header = parse_header(tail)
    assert (header.record_count, header.last_offset + 1) == (0, log.log_end_offset)
    assert DefaultRecordBatch(tail).next_offset == 3
    log.close()
    reopened = open_log(tmp_path / "p", cleanup_policy="compact")
    assert reopened.read(1, 1 << 20) == tail
    reopened.close()


def test_compaction_rewrites_compressed_batches_and_drops_aborted_records(
    tmp_path: Path,
) -> None:
    """Aborted transactional records vanish; rebuilt gzip batches keep their identity."""
    log = open_log(tmp_path / "p", cleanup_policy="compact")
    values = [(b"k%d" % (i % 3), b"v%d" % i) for i in range(6)]
    log.append(make_batch(values, producer_id=4, epoch=0, sequence=0, compression=1), now_ms=0)
    log.append(
        make_batch([(b"k0", b"aborted")], producer_id=6, epoch=0, sequence=0, transactional=True),
        now_ms=0,
    )
    log.append_control(producer_id=6, producer_epoch=0, commit=False, now_ms=0)
    log.roll()
    assert log.compact(now_ms=10_000) > 0
    data = log.read(0, 1 << 20)
    assert records_of(data) == [(3, b"k0", b"v3"), (4, b"k1", b"v4"), (5, b"k2", b"v5")]
    first = parse_header(next(batches_of(data)))
    assert (first.base_offset, first.last_offset, first.compression) == (0, 5, 1)
    assert (first.producer_id, first.base_sequence) == (4, 0)
    assert DefaultRecordBatch(next(batches_of(data))).validate_crc()
    assert [parse_header(b).is_control for b in batches_of(data)] == [False, True]
    log.close()


def test_compacted_topics_refuse_records_without_key(tmp_path: Path) -> None:
    """A null key on a compacted topic is an invalid record."""
    log = open_log(tmp_path / "p", cleanup_policy="compact")
    keyless = make_batch([(None, b"v")])
    assert has_null_key(keyless)
    with pytest.raises(KafkaError) as caught:
        log.append(keyless, now_ms=0)
    assert caught.value.code == ErrorCode.INVALID_RECORD
    assert log.log_end_offset == 0
    log.close()


async def test_concurrent_syncs_share_one_fsync(log: PartitionLog) -> None:
    """Callers waiting together need one fsync; without new writes none at all."""
    log.append(make_batch([b"a"]), now_ms=0)
    await asyncio.gather(*(log.sync() for _ in range(10)))
    assert log.fsync_count == 1
    await log.sync()
    assert log.fsync_count == 1
    log.append(make_batch([b"b"]), now_ms=0)
    await asyncio.gather(log.sync(), log.sync())
    assert log.fsync_count == 2


async def test_sync_waits_for_an_fsync_started_after_the_write(log: PartitionLog) -> None:
    """A write made while an fsync runs is only acknowledged by a later fsync."""
    log.append(make_batch([b"a"]), now_ms=0)

    async def write_during_the_first_fsync() -> int:
        log.append(make_batch([b"b"]), now_ms=0)
        await log.sync()
        return log.fsync_count

    # gather starts the tasks in order: the first starts an fsync before the second writes.
    _, seen = await asyncio.gather(log.sync(), write_during_the_first_fsync())
    assert seen == log.fsync_count == 2


_WRITER = """
import asyncio, sys
from pathlib import Path
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from services.log._config import TopicConfig
from services.log._partition import PartitionLog

async def main() -> None:
    log = PartitionLog.open(Path(sys.argv[1]), config=TopicConfig(segment_bytes=50_000))
    i = 0
    while True:
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
        for j in range(10):
            builder.append(j, i, b"k", b"%d" % (i * 10 + j), [])
        result = log.append(bytes(builder.build()), now_ms=0)
        await log.sync()
        print(result.last_offset, flush=True)
        i += 1

asyncio.run(main())
"""


def test_kill_9_keeps_every_synced_batch(tmp_path: Path) -> None:
    """A writer killed mid-stream reopens with every acknowledged record, offsets contiguous."""
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path / "p")],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    acked = -1
    for line in process.stdout:
        acked = int(line)
        if acked >= 2_000:
            break
    process.kill()
    process.wait()
    process.stdout.close()
    log = open_log(tmp_path / "p", segment_bytes=50_000)
    assert log.log_end_offset > acked
    offsets, values = [], []
    offset = 0
    while offset < log.log_end_offset:
        records = records_of(log.read(offset, 1 << 16))
        offsets += [o for o, _k, _v in records if o >= offset]
        values += [v for o, _k, v in records if o >= offset]
        offset = offsets[-1] + 1
    assert offsets == list(range(log.log_end_offset))
    assert values == [b"%d" % i for i in range(log.log_end_offset)]
    log.close()


def test_read_without_at_least_one_never_exceeds_max_bytes(log: PartitionLog) -> None:
    """A later partition of a Fetch gets nothing rather than a batch over the response limit."""
    log.append(make_batch([b"x" * 1000]), now_ms=0)
    assert log.read(0, 10, at_least_one=False) == b""
    assert len(log.read(0, 10)) > 1000

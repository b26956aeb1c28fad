"""One segment of a partition's log: ``<base>.log`` with its sparse ``.index`` and ``.timeindex``.

The ``.log`` file holds whole v2 batches back to back. The indexes are sparse so that they stay
tiny (0.2% of the log) and are read with ``pread`` instead of held in memory:

* ``.index``: ``(relative offset int32, file position int32)`` of a batch, written when at least
  ``INDEX_INTERVAL`` bytes of log lie between it and the previous entry;
* ``.timeindex``: ``(timestamp int64, relative offset int32)`` written at those same batches
  whenever the largest timestamp of all *earlier* batches grew; so every batch before the entry's
  offset has a max timestamp <= the entry's timestamp.

Both follow from the log alone, so recovery recomputes them and rewrites any file that differs
(missing, torn, or pointing past a truncated tail). Everything is written with ``os.write`` and
read with ``os.pread``: the log is never held in memory. The files are ``FileHandle``s of the
broker's ``OpenFiles``: open while in use, closed (after an fsync if needed) to bound how many
descriptors the broker holds.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import crc32c

from services.log._batch import (
    CRC_START,
    HEADER_SIZE,
    MAGIC_V2,
    MIN_BATCH_LENGTH,
    BatchHeader,
    parse_header,
)
from services.log._errors import StorageError
from services.log._files import FileHandle, OpenFiles

INDEX_INTERVAL = 4096
# Positions and relative offsets are int32 in the index files.
MAX_SEGMENT_BYTES = 2**31 - 1
MAX_RELATIVE_OFFSET = 2**31 - 1
NO_TIMESTAMP = -1

_INDEX_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_BASE_OFFSET = struct.Struct(">q")
# Large enough that a header scan over small batches costs one pread per window.
_SCAN_WINDOW = 64 * 1024
SUFFIXES = (".log", ".index", ".timeindex")

Visitor = Callable[[BatchHeader, bytes | None], None]


def segment_name(base_offset: int) -> str:
    """The file stem of the segment starting at ``base_offset``."""
    return f"{base_offset:020d}"


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written (regular files may accept partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    """Make created, renamed or deleted names in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segment:
    """A contiguous run of batches starting at ``base_offset``; only the last one is appended."""

    def __init__(
        self, directory: Path, base_offset: int, *, files: OpenFiles, suffix: str = ""
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.open_files = files
        self._suffix = suffix
        log, index, timeindex = (FileHandle(files, path) for path in self.paths)
        self.files = (log, index, timeindex)
        self._log, self._index, self._timeindex = log, index, timeindex
        try:
            for handle in self.files:
                handle.create()
        except StorageError:
            self.close()
            raise
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self._index_entries = 0
        self._time_entries = 0
        self._last_index_pos = 0
        self._running_max = NO_TIMESTAMP
        self._last_time_entry = NO_TIMESTAMP

    @property
    def paths(self) -> list[Path]:
        """The segment's three files (log, index, time index)."""
        stem = self.directory / segment_name(self.base_offset)
        return [Path(f"{stem}{ext}{self._suffix}") for ext in SUFFIXES]

    @classmethod
    def create(
        cls, directory: Path, base_offset: int, *, files: OpenFiles, suffix: str = ""
    ) -> Segment:
        """A new, empty segment (existing files of that name are emptied)."""
        segment = cls(directory, base_offset, files=files, suffix=suffix)
        for handle in segment.files:
            os.ftruncate(handle.fd(), 0)
            handle.dirty = True
        return segment

    # -- appending ---------------------------------------------------------------------------

    def _index_step(self, pos: int, base_offset: int, max_timestamp: int) -> tuple[bytes, bytes]:
        """Advance the index state over the batch at ``pos``; the entries it adds, if any."""
        index = timeindex = b""
        if pos - self._last_index_pos >= INDEX_INTERVAL:
            relative = base_offset - self.base_offset
            index = _INDEX_ENTRY.pack(relative, pos)
            self._last_index_pos = pos
            if self._running_max > self._last_time_entry:
                timeindex = _TIME_ENTRY.pack(self._running_max, relative)
                self._last_time_entry = self._running_max
        self._running_max = max(self._running_max, max_timestamp)
        return index, timeindex

    def append(
        self,
        data: bytes | bytearray | memoryview,
        headers: Sequence[BatchHeader],
        base_offsets: Sequence[int] | None = None,
    ) -> None:
        """Append whole batches; ``headers`` describe them in order.

        ``base_offsets`` are the batches' offsets in ``data`` when the headers still carry the
        producer's. Raises ``StorageError`` when the disk refuses the write; the segment is
        then unchanged.
        """
        saved = (self._last_index_pos, self._running_max, self._last_time_entry)
        if base_offsets is None:
            base_offsets = [header.base_offset for header in headers]
        index, timeindex = bytearray(), bytearray()
        pos = self.size
        for header, base_offset in zip(headers, base_offsets, strict=True):
            entry, time_entry = self._index_step(pos, base_offset, header.max_timestamp)
            index += entry
            timeindex += time_entry
            pos += header.size
        # Descriptors first (opening one may close an idle file), so a write cannot be left
        # half done by a failed open. Index files not written to need not be open.
        log_fd = self._log.fd()
        index_fd = self._index.fd() if index else -1
        time_fd = self._timeindex.fd() if timeindex else -1
        try:
            self._log.dirty = True
            write_all(log_fd, data)
            if index:
                self._index.dirty = True
                write_all(index_fd, index)
            if timeindex:
                self._timeindex.dirty = True
                write_all(time_fd, timeindex)
        except OSError as exc:
            self._last_index_pos, self._running_max, self._last_time_entry = saved
            os.ftruncate(log_fd, self.size)
            if index:
                os.ftruncate(index_fd, self._index_entries * _INDEX_ENTRY.size)
            if timeindex:
                os.ftruncate(time_fd, self._time_entries * _TIME_ENTRY.size)
            raise StorageError(f"cannot append to {self.paths[0]}: {exc}") from exc
        self._index_entries += len(index) // _INDEX_ENTRY.size
        self._time_entries += len(timeindex) // _TIME_ENTRY.size
        self.size = pos
        self.next_offset = base_offsets[-1] + headers[-1].last_offset_delta + 1
        self.max_timestamp = max(self.max_timestamp, *(h.max_timestamp for h in headers))

    # -- reading -----------------------------------------------------------------------------

    def read(self, position: int, length: int) -> bytes:
        """``length`` bytes of the log from ``position`` (fewer at the end of the file)."""
        return os.pread(self._log.fd(), length, position)

    def batches(
        self, start: int = 0, *, with_data: bool = False
    ) -> Iterator[tuple[int, BatchHeader, memoryview | None]]:
        """``(position, header, batch bytes if with_data)`` of each batch from ``start``.

        The log stays open (pinned) while the iterator is alive, whatever else is opened.
        """
        size = self.size
        fd = self._log.pin()
        try:
            yield from _walk(fd, start, size, with_data=with_data)
        finally:
            self._log.unpin()

    def lookup(self, offset: int) -> int:
        """A batch boundary at or before the batch holding ``offset`` (binary search in .index)."""
        relative = offset - self.base_offset
        lo, hi = 0, self._index_entries
        if not hi:
            return 0
        fd = self._index.fd()
        while lo < hi:
            mid = (lo + hi) // 2
            if _index_entry(fd, mid)[0] <= relative:
                lo = mid + 1
            else:
                hi = mid
        return _index_entry(fd, lo - 1)[1] if lo else 0

    def find(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the first batch whose last offset >= ``offset``, if any."""
        if offset >= self.next_offset:
            return None
        start = self.lookup(offset)
        # Not batches(): nothing in this loop opens a file, so the log needs no pin.
        for pos, header, _ in _walk(self._log.fd(), start, self.size, with_data=False):
            if header.last_offset >= offset:
                return pos, header
        return None

    def find_timestamp(self, timestamp: int) -> Iterator[tuple[BatchHeader, bytes]]:
        """Batches from the first one whose max timestamp >= ``timestamp`` on, with their bytes."""
        if self.max_timestamp < timestamp:
            return
        time_fd = self._timeindex.fd()
        lo, hi = 0, self._time_entries
        while lo < hi:
            mid = (lo + hi) // 2
            raw = os.pread(time_fd, _TIME_ENTRY.size, mid * _TIME_ENTRY.size)
            if _TIME_ENTRY.unpack(raw)[0] < timestamp:
                lo = mid + 1
            else:
                hi = mid
        start = 0
        if lo:
            raw = os.pread(time_fd, _TIME_ENTRY.size, (lo - 1) * _TIME_ENTRY.size)
            start = self.lookup(self.base_offset + _TIME_ENTRY.unpack(raw)[1])
        for _pos, header, data in self.batches(start, with_data=True):
            if header.max_timestamp >= timestamp and data is not None:
                yield header, bytes(data)

    # -- durability and lifecycle -------------------------------------------------------------

    def fsync(self) -> None:
        """Flush the open files to disk (blocking; closed ones were fsynced when closed)."""
        for handle in self.files:
            handle.fsync()

    def install(self) -> None:
        """Durably rename a segment written under a suffix to its final names."""
        if not self._suffix:
            return
        self.fsync()
        temporary = self.paths
        self._suffix = ""
        # The log goes first: recovery recomputes the indexes and fixes any that lag behind.
        for handle, source, target in zip(self.files, temporary, self.paths, strict=True):
            os.replace(source, target)
            handle.path = target
        fsync_dir(self.directory)

    def mtime_ms(self) -> int:
        """The log file's modification time, for segments without timestamps."""
        return int(os.stat(self._log.path).st_mtime * 1000)

    def close(self) -> None:
        """Close the files (unsynced data is not fsynced); closing twice is harmless."""
        for handle in self.files:
            handle.close()

    def delete(self) -> None:
        """Close and remove the files (the log first, so a crash leaves only stray indexes)."""
        self.close()
        for path in self.paths:
            path.unlink(missing_ok=True)

    # -- recovery ----------------------------------------------------------------------------

    @classmethod
    def recover(
        cls,
        directory: Path,
        base_offset: int,
        *,
        check_crc: bool,
        min_offset: int,
        visit: Visitor,
        files: OpenFiles,
    ) -> tuple[Segment, bool]:
        """Open an existing segment, truncating it at the first invalid batch.

        ``visit`` sees every valid batch in order, with the bytes of control batches. CRCs are
        checked when ``check_crc`` or when the index looks inconsistent with the log. Returns
        the segment and whether its tail was cut (the caller then drops later segments).
        """
        stem = directory / segment_name(base_offset)
        had_indexes = all(Path(f"{stem}{ext}").exists() for ext in SUFFIXES[1:])
        segment = cls(directory, base_offset, files=files)
        try:
            with (
                segment._log.pinned() as log_fd,
                segment._index.pinned() as index_fd,
                segment._timeindex.pinned() as time_fd,
            ):
                truncated = segment._recover(
                    log_fd, index_fd, time_fd, check_crc, min_offset, had_indexes, visit
                )
        except BaseException:
            segment.close()
            raise
        return segment, truncated

    def _recover(
        self,
        log_fd: int,
        index_fd: int,
        time_fd: int,
        check_crc: bool,
        min_offset: int,
        had_indexes: bool,
        visit: Visitor,
    ) -> bool:
        base_offset = self.base_offset
        end = os.fstat(log_fd).st_size
        if not (had_indexes and self._indexes_plausible(log_fd, index_fd, time_fd, end)):
            check_crc = True
        expected = max(base_offset, min_offset)
        index, timeindex = bytearray(), bytearray()
        good = 0
        for pos, header, data in _walk(log_fd, 0, end, with_data=check_crc):
            if not _valid(header, pos, end, expected, base_offset):
                break
            if check_crc and (data is None or crc32c.crc32c(data[CRC_START:]) != header.crc):
                break
            entry, time_entry = self._index_step(pos, header.base_offset, header.max_timestamp)
            index += entry
            timeindex += time_entry
            control = None
            if header.is_control:
                control = bytes(data) if data is not None else os.pread(log_fd, header.size, pos)
            visit(header, control)
            good = pos + header.size
            expected = header.last_offset + 1
            self.max_timestamp = max(self.max_timestamp, header.max_timestamp)
        self.size = good
        self.next_offset = max(base_offset, expected)
        truncated = good != end
        changed = truncated
        if truncated:
            os.ftruncate(log_fd, good)
        for fd, want in ((index_fd, index), (time_fd, timeindex)):
            if os.pread(fd, len(want) + 1, 0) != want:
                os.ftruncate(fd, 0)
                write_all(fd, want)
                changed = True
        self._index_entries = len(index) // _INDEX_ENTRY.size
        self._time_entries = len(timeindex) // _TIME_ENTRY.size
        if changed:
            # Repairs must be on disk before new appends land behind them.
            self.fsync()
        return truncated

    def _indexes_plausible(self, log_fd: int, index_fd: int, time_fd: int, log_size: int) -> bool:
        """Cheap check that the index files match the log (else every CRC gets verified)."""
        index_size = os.fstat(index_fd).st_size
        time_size = os.fstat(time_fd).st_size
        if index_size % _INDEX_ENTRY.size or time_size % _TIME_ENTRY.size:
            return False
        if index_size == 0:
            return True
        raw = os.pread(index_fd, _INDEX_ENTRY.size, index_size - _INDEX_ENTRY.size)
        relative, position = _INDEX_ENTRY.unpack(raw)
        if not 0 <= position <= log_size - HEADER_SIZE:
            return False
        head = os.pread(log_fd, _BASE_OFFSET.size, position)
        return bool(_BASE_OFFSET.unpack(head)[0] == self.base_offset + relative)


def _index_entry(fd: int, i: int) -> tuple[int, int]:
    relative, position = _INDEX_ENTRY.unpack(os.pread(fd, _INDEX_ENTRY.size, i * _INDEX_ENTRY.size))
    return relative, position


def _valid(header: BatchHeader, pos: int, end: int, expected: int, base_offset: int) -> bool:
    """Whether a stored batch is framed sanely and continues the offsets before it."""
    return (
        header.magic == MAGIC_V2
        and header.batch_length >= MIN_BATCH_LENGTH
        and pos + header.size <= end
        and header.base_offset >= expected
        and header.last_offset_delta >= 0
        and header.last_offset - base_offset <= MAX_RELATIVE_OFFSET
        and header.record_count >= 0
    )


def _walk(
    fd: int, start: int, end: int, *, with_data: bool
) -> Iterator[tuple[int, BatchHeader, memoryview | None]]:
    """Headers (and optionally bytes) of the batches in ``[start, end)``, read in windows.

    Stops after a header whose length is impossible or runs past ``end``; callers that must
    reject such a batch check it themselves. ``data`` is None when not requested or incomplete.
    """
    pos = start
    window = memoryview(b"")
    window_start = start
    while pos + HEADER_SIZE <= end:
        offset = pos - window_start
        if offset + HEADER_SIZE > len(window):
            window = memoryview(os.pread(fd, min(_SCAN_WINDOW, end - pos), pos))
            window_start, offset = pos, 0
            if len(window) < HEADER_SIZE:
                return
        header = parse_header(window, offset)
        size = header.size
        complete = header.batch_length >= MIN_BATCH_LENGTH and pos + size <= end
        data = None
        if with_data and complete:
            if offset + size > len(window):
                window = memoryview(os.pread(fd, max(min(_SCAN_WINDOW, end - pos), size), pos))
                window_start, offset = pos, 0
            if offset + size <= len(window):
                data = window[offset : offset + size]
        yield pos, header, data
        if not complete:
            return
        pos += size

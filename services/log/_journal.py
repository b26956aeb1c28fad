"""A small durable journal of JSON entries: the broker's own metadata log.

Topics, configs, committed offsets and transaction state are low-volume facts that must
survive ``kill -9``. Each entry is one line ``<crc32c hex> <json>\\n``, appended and fsynced
before the call returns. On open, entries are replayed up to the first line that is torn or
fails its checksum; that tail is truncated, never served. ``rewrite`` replaces the whole file
atomically (write, fsync, rename) so the journal can be compacted to a snapshot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import crc32c

from services.log._errors import BrokerClosedError

Entry = dict[str, Any]


def _frame(entry: Entry) -> bytes:
    body = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (crc32c.crc32c(body), body)


class Journal:
    """An append-only, checksummed, fsynced file of JSON entries."""

    def __init__(self, path: Path, fd: int, entries: list[Entry]) -> None:
        self.path = path
        self._fd: int | None = fd
        self._replayed = entries

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (or create) the journal at ``path``, truncating a torn or corrupt tail."""
        path.parent.mkdir(parents=True, exist_ok=True)
        entries: list[Entry] = []
        good = 0
        data = path.read_bytes() if path.exists() else b""
        for line in data.splitlines(keepends=True):
            parsed = _parse(line)
            if parsed is None:
                break
            entries.append(parsed)
            good += len(line)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if good != len(data):
            os.ftruncate(fd, good)
            os.fsync(fd)
        return cls(path, fd, entries)

    def replay(self) -> Iterator[Entry]:
        """The entries found when the journal was opened, oldest first (once)."""
        entries, self._replayed = self._replayed, []
        return iter(entries)

    def append(self, *entries: Entry, sync: bool = True) -> None:
        """Append entries as one write; with ``sync`` they are on disk when this returns."""
        if self._fd is None:
            raise BrokerClosedError(f"journal {self.path} is closed")
        os.write(self._fd, b"".join(_frame(e) for e in entries))
        if sync:
            os.fsync(self._fd)

    def rewrite(self, entries: Iterable[Entry]) -> None:
        """Atomically replace the journal's content with ``entries`` (a snapshot)."""
        if self._fd is None:
            raise BrokerClosedError(f"journal {self.path} is closed")
        write_snapshot(self.path, entries)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_snapshot(path: Path, entries: Iterable[Entry]) -> None:
    """Atomically and durably replace the journal at ``path`` with ``entries``.

    For journals that are read once and rarely rewritten, so need no open descriptor.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as out:
        out.write(b"".join(_frame(e) for e in entries))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _parse(line: bytes) -> Entry | None:
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != crc32c.crc32c(body):
            return None
        entry = json.loads(body)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


class JournalBacked:
    """Base of the broker's small journal-backed stores (ACLs, SCRAM credentials, configs).

    Holds the journal until :meth:`close` (closing twice is harmless); ``_check_open`` gives it
    to a write, or raises ``BrokerClosedError`` naming the store.
    """

    _kind = "store"

    def __init__(self, journal: Journal) -> None:
        self._journal: Journal | None = journal

    def close(self) -> None:
        """Close the journal; closing twice is harmless."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _check_open(self) -> Journal:
        if self._journal is None:
            raise BrokerClosedError(f"the {self._kind} is closed")
        return self._journal

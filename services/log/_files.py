"""A broker-wide bound on open partition files: an LRU cache of file handles.

Every segment file (``.log``, ``.index``, ``.timeindex``) and every partition directory that
needs an fsync is a ``FileHandle``: a path whose descriptor is opened on first use and closed
when ``OpenFiles`` needs room, least recently used first. So a broker with tens of thousands of
partitions holds at most ``limit`` of their descriptors, and idle partitions hold none.

Durability is never traded for room:

* a handle written since its last fsync is *dirty*; evicting it fsyncs it first (on the
  caller's thread: rare, and cheaper than losing an acknowledged write);
* a group-commit fsync pins the handles it syncs off the loop, and a pinned handle is neither
  evicted nor closed (``close()`` is deferred until the last unpin). At most half the limit may
  be pinned for fsyncs, so there is always an unpinned handle to evict;
* an eviction fsync that fails is remembered on the handle: every later use of it, and the
  next ``sync()`` of its partition, raises ``StorageError``: the write is never reported
  durable.

Touching an open handle is a dict move, never a system call: the hot path costs nothing more.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from services.log._errors import LogError, StorageError, TooManyOpenFilesError

log = logging.getLogger("netscript.log")

# Enough that a segment's three files, a scan's pinned log and the fsync pins always fit.
MIN_OPEN_FILES = 16
DEFAULT_MIN_OPEN_FILES = 64
# Used when RLIMIT_NOFILE is unlimited.
_UNLIMITED = 1 << 20
_FILE_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


def default_max_open_files() -> int:
    """Half the process's soft ``RLIMIT_NOFILE`` (at least 64): the rest is for sockets."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = _UNLIMITED
    return max(DEFAULT_MIN_OPEN_FILES, soft // 2)


class FileHandle:
    """One file (or directory) of a partition, opened lazily through ``OpenFiles``.

    Not thread-safe: use it from the event loop's thread. Only the descriptor of a pinned
    handle may be handed to another thread.
    """

    __slots__ = ("_closed", "_fd", "_files", "_flags", "_pins", "dirty", "failure", "path")

    def __init__(self, files: OpenFiles, path: Path, *, directory: bool = False) -> None:
        self.path = path
        self._files = files
        self._flags = _DIRECTORY_FLAGS if directory else _FILE_FLAGS
        self._fd: int | None = None
        self._pins = 0
        self._closed = False
        # Written since the last fsync: must be fsynced before its descriptor is closed.
        self.dirty = False
        # An fsync at eviction failed: what was written may be lost.
        self.failure: OSError | None = None

    @property
    def is_open(self) -> bool:
        """Whether the descriptor is open now."""
        return self._fd is not None

    @property
    def is_pinned(self) -> bool:
        """Whether something (an fsync off the loop, a scan) holds the descriptor open."""
        return self._pins > 0

    def fd(self) -> int:
        """The descriptor, opened (evicting another handle if needed) when it is not.

        Use it at once; across anything that may open other files, use ``pinned()``.
        Raises ``StorageError`` when the file cannot be opened or an earlier fsync failed.
        """
        fd = self._fd
        if fd is None or self._pins:
            return self._slow_fd()
        self._files._lru.move_to_end(self)
        return fd

    def _slow_fd(self) -> int:
        if self._fd is not None:
            return self._fd  # pinned: not in the LRU, nothing to touch
        if self._closed:
            raise StorageError(f"{self.path} is closed; reopen the partition")
        if self.failure is not None:
            raise StorageError(
                f"an fsync of {self.path} failed ({self.failure}); acknowledged data may be "
                "lost, restart the broker to recover the log"
            )
        self._fd = self._files._open(self, self._flags)
        return self._fd

    def create(self) -> None:
        """Create the file if it does not exist, and open it."""
        if self._fd is None:
            self._fd = self._files._open(self, self._flags | os.O_CREAT)

    def pin(self) -> int:
        """Open the file if needed and keep it open until ``unpin()``; its descriptor."""
        fd = self.fd()
        if self._pins == 0:
            self._files._pin(self)
        self._pins += 1
        return fd

    def unpin(self) -> None:
        """Undo one ``pin()``; a ``close()`` requested meanwhile happens now."""
        self._pins -= 1
        if self._pins:
            return
        self._files._unpin(self)
        if self._closed:
            self._release()

    @contextlib.contextmanager
    def pinned(self) -> Iterator[int]:
        """The descriptor, kept open for the duration of the block."""
        fd = self.pin()
        try:
            yield fd
        finally:
            self.unpin()

    def fsync(self) -> None:
        """fsync the file if it is open (a closed handle is clean); raises ``OSError``."""
        if self.failure is not None:
            raise self.failure
        if self._fd is not None:
            os.fsync(self._fd)
            self.dirty = False

    def close(self) -> None:
        """Close for good (deferred while pinned); closing twice is harmless.

        Unsynced data is not fsynced: callers fsync first when it matters.
        """
        if self._closed:
            return
        self._closed = True
        if self._fd is not None and not self._pins:
            self._files._forget(self)
            self._release()

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        self.dirty = False
        if fd is not None:
            os.close(fd)

    def _evict(self) -> bool:
        """Close to make room, fsyncing unsynced data first; whether it had to fsync."""
        fd = self._fd
        dirty = self.dirty
        if fd is not None and dirty:
            try:
                os.fsync(fd)
            except OSError as exc:
                self.failure = exc
                log.error("fsync of %s failed while closing it: %s", self.path, exc)
        self._release()
        return dirty


class OpenFiles:
    """At most ``limit`` open partition files, the least recently used closed first."""

    def __init__(self, limit: int) -> None:
        if limit < MIN_OPEN_FILES:
            raise LogError(
                f"max_open_files must be at least {MIN_OPEN_FILES}, not {limit}; raise it "
                "(it is a cap on open segment files, not on connections)"
            )
        self.limit = limit
        # Open, unpinned handles, least recently used first; pinned ones are only counted.
        self._lru: OrderedDict[FileHandle, None] = OrderedDict()
        self._pinned = 0
        self.opens = 0
        self.evictions = 0
        self.eviction_fsyncs = 0

    @property
    def open_count(self) -> int:
        """Descriptors open now (pinned ones included)."""
        return len(self._lru) + self._pinned

    @property
    def pinned_count(self) -> int:
        """Descriptors held open by an fsync off the loop or a scan."""
        return self._pinned

    def pin_for_fsync(self, handles: Sequence[FileHandle]) -> list[int] | None:
        """Pin all of ``handles`` for an fsync off the loop and mark them clean; their fds.

        ``None`` (nothing pinned) when that would pin more than half the limit: then the
        caller fsyncs them inline, so eviction always finds an unpinned handle.
        Raises ``StorageError`` when a handle cannot be opened (then none is pinned).
        """
        if self._pinned + len(handles) > self.limit // 2:
            return None
        fds: list[int] = []
        try:
            for handle in handles:
                fds.append(handle.pin())
        except BaseException:
            for handle in handles[: len(fds)]:
                handle.unpin()
            raise
        for handle in handles:
            handle.dirty = False
        return fds

    # -- used by FileHandle -------------------------------------------------------------------

    def _open(self, handle: FileHandle, flags: int) -> int:
        while self.open_count >= self.limit and self._lru:
            self._evict_one()
        try:
            fd = self._os_open(handle.path, flags)
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:
                raise TooManyOpenFilesError(
                    f"cannot open {handle.path}: {exc}; connections hold every descriptor: "
                    "raise `ulimit -n` or lower --max-open-files",
                    path=str(handle.path),
                ) from exc
            raise StorageError(f"cannot open {handle.path}: {exc}") from exc
        self._lru[handle] = None
        self.opens += 1
        return fd

    def _os_open(self, path: Path, flags: int) -> int:
        try:
            return os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno not in _OUT_OF_FDS or not self._lru:
                raise
        # The process ran out of descriptors (sockets took them): give back a quarter of ours.
        shed = max(1, len(self._lru) // 4)
        log.warning(
            "out of file descriptors opening %s; closing %d idle segment files (raise "
            "`ulimit -n` or lower --max-open-files)",
            path,
            shed,
        )
        for _ in range(shed):
            self._evict_one()
        return os.open(path, flags, 0o644)

    def _evict_one(self) -> None:
        handle, _ = self._lru.popitem(last=False)
        self.evictions += 1
        if handle._evict():
            self.eviction_fsyncs += 1

    def _pin(self, handle: FileHandle) -> None:
        del self._lru[handle]
        self._pinned += 1

    def _unpin(self, handle: FileHandle) -> None:
        self._pinned -= 1
        if not handle._closed:
            self._lru[handle] = None

    def _forget(self, handle: FileHandle) -> None:
        del self._lru[handle]

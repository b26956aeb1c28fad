"""Group commit: many ``sync()`` callers, few fsyncs.

Appends only ``os.write``; a producer with acks=all then awaits ``sync()``. Every write is
stamped with the number of the first fsync that will start after it; a caller waits until an
fsync with at least that number has finished, starting one only when none is under way. So
callers that arrive while an fsync runs share the next one, and a caller never returns on an
fsync that began before its data was written.

An fsync pass covers the files written since the last pass (their ``FileHandle.dirty``), not
every file of the partition. It runs off the loop on the handles' own descriptors, pinned so
that the ``OpenFiles`` cache cannot close them meanwhile; a file the cache closed in between
was fsynced when it was closed. When pinning would take too many descriptors out of the
cache's reach, the pass fsyncs inline instead.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from services.log._errors import StorageError
from services.log._files import FileHandle, OpenFiles
from services.log._segment import Segment


class GroupCommit:
    """The fsync bookkeeping of one partition directory."""

    def __init__(self, directory: Path, files: OpenFiles) -> None:
        self.directory = directory
        self._files = files
        self._directory_handle = FileHandle(files, directory, directory=True)
        self._unsynced: dict[int, Segment] = {}
        self._directory_unsynced = False
        self._needed = 0  # the fsync number that covers every write so far
        self._started = 0
        self._done = 0
        self._inflight: asyncio.Future[None] | None = None
        self._inflight_number = 0
        self._inflight_pins: list[FileHandle] = []
        self._error: StorageError | None = None

    @property
    def fsync_count(self) -> int:
        """How many fsync passes have completed."""
        return self._done

    def written(self, segment: Segment) -> None:
        """``segment`` got data that the next fsync must cover."""
        self._unsynced[segment.base_offset] = segment
        self._needed = self._started + 1

    def created(self, segment: Segment) -> None:
        """``segment`` is new: its directory entry must be made durable too."""
        self.written(segment)
        self._directory_unsynced = True

    def forget(self, segment: Segment) -> bool:
        """``segment`` is going away; whether it had unsynced data."""
        self._directory_unsynced = True
        return self._unsynced.pop(segment.base_offset, None) is not None

    def flush_now(self) -> None:
        """fsync everything pending, blocking (for close and before a segment is rewritten)."""
        for segment in self._unsynced.values():
            segment.fsync()
        if self._directory_unsynced:
            self._directory_handle.fd()
            self._directory_handle.fsync()
        self._unsynced.clear()
        self._directory_unsynced = False

    def close(self) -> None:
        """Close the directory's descriptor (deferred while an fsync uses it)."""
        self._directory_handle.close()

    async def sync(self) -> None:
        """Return once everything written before the call is on disk.

        Raises ``StorageError`` if an fsync failed; every later call fails too, because the
        fate of the written data is unknown (retrying fsync can falsely succeed). A
        ``StorageError`` raised because a file could not be opened (out of descriptors) is not
        sticky: the next call tries again.
        """
        target = self._needed
        while True:
            if self._error is not None:
                raise self._error
            if self._done >= target:
                return
            future = self._inflight or self._start()
            if future.done():
                # Its done callback may not have run yet, and awaiting a finished future does
                # not yield to the loop: settle it here, or this loop would spin forever.
                self._settle(future)
                continue
            try:
                await asyncio.shield(future)
            except (OSError, asyncio.CancelledError):
                if self._error is None:
                    raise  # this waiter was cancelled; the fsync itself goes on
                # Otherwise the done callback recorded the failure; raise it above.

    def _settle(self, done: asyncio.Future[None]) -> None:
        """Record the outcome of a finished fsync (once, from whoever sees it first)."""
        if self._inflight is not done:
            return
        self._inflight = None
        pins, self._inflight_pins = self._inflight_pins, []
        for handle in pins:
            handle.unpin()
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        if error is None:
            self._done = self._inflight_number
            return
        self._error = StorageError(
            f"fsync in {self.directory} failed: {error!r}; acknowledged data may be lost, "
            "restart the broker to recover the log"
        )
        self._error.__cause__ = error

    def _start(self) -> asyncio.Future[None]:
        if self._directory_unsynced:
            # May raise StorageError (out of descriptors) before anything changed: the next
            # sync() tries again. Opening first also means nothing below opens a file.
            self._directory_handle.fd()
        segments = list(self._unsynced.values())
        handles = [handle for segment in segments for handle in segment.files if handle.dirty]
        if self._directory_unsynced:
            handles.append(self._directory_handle)
        # An fsync when the cache closed a file failed: what it held may be lost.
        failure = next((h.failure for s in segments for h in s.files if h.failure), None)
        fds = None if failure or not handles else self._files.pin_for_fsync(handles)
        self._started += 1
        self._unsynced.clear()
        self._directory_unsynced = False
        loop = asyncio.get_running_loop()
        if fds is None:
            future = loop.create_future()
            try:
                if failure is not None:
                    raise failure
                for handle in handles:
                    handle.fsync()  # inline: pinning would starve the cache
            except OSError as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)
        else:
            self._inflight_pins = handles
            # A plain executor future, not a task: it runs to completion even if every waiter
            # is cancelled, and the callback records its outcome either way. The descriptors
            # are pinned, so nothing closes them under the fsync; the callback unpins them.
            future = loop.run_in_executor(None, _fsync_all, fds)
        self._inflight = future
        self._inflight_number = self._started
        future.add_done_callback(self._settle)
        return future


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)

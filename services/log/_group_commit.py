"""Group commit: many ``sync()`` callers, few fsyncs.

Appends only ``os.write``; a producer with acks=all then awaits ``sync()``. Every write is
stamped with the number of the first fsync that will start after it; a caller waits until an
fsync with at least that number has finished, starting one only when none is under way. So
callers that arrive while an fsync runs share the next one, and a caller never returns on an
fsync that began before its data was written.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from services.log._errors import StorageError
from services.log._segment import Segment, fsync_dir


class GroupCommit:
    """The fsync bookkeeping of one partition directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._unsynced: dict[int, Segment] = {}
        self._directory_unsynced = False
        self._needed = 0  # the fsync number that covers every write so far
        self._started = 0
        self._done = 0
        self._inflight: asyncio.Future[None] | None = None
        self._inflight_number = 0
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
            fsync_dir(self.directory)
        self._unsynced.clear()
        self._directory_unsynced = False

    async def sync(self) -> None:
        """Return once everything written before the call is on disk.

        Raises ``StorageError`` if an fsync failed; every later call fails too, because the
        fate of the written data is unknown (retrying fsync can falsely succeed).
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
        self._started += 1
        fds = [fd for segment in self._unsynced.values() for fd in segment.dup_fds()]
        if self._directory_unsynced:
            fds.append(os.open(self.directory, os.O_RDONLY))
        self._unsynced.clear()
        self._directory_unsynced = False
        # A plain executor future, not a task: it runs to completion even if every waiter is
        # cancelled, and the callback records its outcome either way. The descriptors are
        # duplicates, so a segment deleted meanwhile cannot close them under the fsync.
        future = asyncio.get_running_loop().run_in_executor(None, _fsync_all, fds)

        self._inflight = future
        self._inflight_number = self._started
        future.add_done_callback(self._settle)
        return future


def _fsync_all(fds: list[int]) -> None:
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)

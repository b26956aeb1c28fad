"""Group commit: fsync sharing must never spin on a finished fsync."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.log._files import OpenFiles
from services.log._group_commit import GroupCommit


async def test_sync_settles_a_finished_fsync_whose_callback_has_not_run(tmp_path: Path) -> None:
    """A caller arriving between an fsync's completion and its callback returns, not spins."""
    commit = GroupCommit(tmp_path, OpenFiles(64))
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # The state right after the executor finished: the future is done, its done callback
    # (which records the fsync as complete) is only scheduled.
    commit._started = 1
    commit._needed = 1
    commit._inflight = finished
    commit._inflight_number = 1
    finished.set_result(None)
    finished.add_done_callback(commit._settle)
    # Called synchronously before the loop runs the callback; the old loop never yielded here.
    await asyncio.wait_for(commit.sync(), 5)
    assert commit.fsync_count == 1

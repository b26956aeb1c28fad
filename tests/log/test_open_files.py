"""The cache of open segment files: bounded, and never at the cost of durability."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
from pathlib import Path

import pytest

from services.log import BrokerConfig, LogError, StorageError
from services.log._config import TopicConfig
from services.log._files import FileHandle, OpenFiles, default_max_open_files
from services.log._partition import PartitionLog
from tests.log.test_partition import make_batch, records_of

LIMIT = 16


def open_logs(root: Path, files: OpenFiles, count: int) -> list[PartitionLog]:
    return [
        PartitionLog.open(root / f"p-{i}", config=TopicConfig(), files=files) for i in range(count)
    ]


def values(log: PartitionLog) -> list[bytes | None]:
    return [value for _offset, _key, value in records_of(log.read(0, 1 << 20))]


async def test_unsynced_files_are_fsynced_when_closed_and_reads_reopen_them(
    tmp_path: Path,
) -> None:
    """Past the limit, dirty files are fsynced before closing; every record reads back."""
    files = OpenFiles(LIMIT)
    logs = open_logs(tmp_path, files, 20)
    for round_ in range(3):
        for i, log in enumerate(logs):
            log.append(make_batch([b"%d-%d" % (i, round_)]), now_ms=0)
            assert files.open_count <= LIMIT
    assert files.eviction_fsyncs > 0
    for i, log in enumerate(logs):
        assert values(log) == [b"%d-%d" % (i, round_) for round_ in range(3)]
        assert files.open_count <= LIMIT
    opens = files.opens
    await asyncio.gather(*(log.sync() for log in logs))
    assert files.opens == opens, "a file fsynced when it was closed was reopened to sync it"
    for log in logs:
        log.close()
    assert files.open_count == 0


async def test_a_file_being_fsynced_stays_open_until_the_fsync_ends(tmp_path: Path) -> None:
    """Group-commit fsyncs pin their files (at most half the limit); eviction skips them."""
    files = OpenFiles(LIMIT)
    logs = open_logs(tmp_path, files, 12)
    for log in logs:
        log.append(make_batch([b"v"]), now_ms=0)
    syncs = asyncio.gather(*(log.sync() for log in logs))
    # One turn of the loop starts every fsync pass; none can have been settled yet.
    await asyncio.sleep(0)
    pinned = [handle for log in logs for handle in log.segments[-1].files if handle.is_pinned]
    assert 0 < len(pinned) == files.pinned_count <= LIMIT // 2
    others = open_logs(tmp_path / "others", files, 10)
    for log in others:
        log.append(make_batch([b"w"]), now_ms=0)
        assert files.open_count <= LIMIT
    assert all(handle.is_open for handle in pinned), "a file was closed under its fsync"
    await syncs
    assert files.pinned_count == 0
    assert all(log.fsync_count == 1 for log in logs)
    for log in [*logs, *others]:
        log.close()


async def test_a_failed_fsync_at_eviction_fails_the_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the fsync before closing fails, sync() raises: the write is never reported durable."""
    files = OpenFiles(LIMIT)
    victim = PartitionLog.open(tmp_path / "victim", config=TopicConfig(), files=files)
    victim.append(make_batch([b"lost?"]), now_ms=0)
    bad_fd = victim.segments[-1].files[0].fd()
    real_fsync = os.fsync

    failed: list[int] = []

    def fsync(fd: int) -> None:
        if fd == bad_fd and not failed:  # once: the number is reused after the close
            failed.append(fd)
            raise OSError(errno.EIO, "simulated disk error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    others = open_logs(tmp_path, files, LIMIT)  # opening them closes the victim's files
    assert not victim.segments[-1].files[0].is_open
    with pytest.raises(StorageError, match="simulated disk error"):
        await victim.sync()
    with pytest.raises(StorageError):
        victim.append(make_batch([b"more"]), now_ms=0)
    victim.destroy()
    for log in others:
        log.close()


def test_a_closed_handle_is_closed_for_good_and_a_pinned_one_closes_on_unpin(
    tmp_path: Path,
) -> None:
    """close() while pinned waits for the unpin; a closed handle never reopens."""
    files = OpenFiles(LIMIT)
    handle = FileHandle(files, tmp_path / "f")
    handle.create()
    handle.pin()
    handle.close()
    assert handle.is_open
    handle.unpin()
    assert not handle.is_open
    assert files.open_count == 0
    with pytest.raises(StorageError, match="closed"):
        handle.fd()


def test_the_limit_defaults_to_half_the_descriptor_limit_and_has_a_floor() -> None:
    """max_open_files: env var or flag, else half of RLIMIT_NOFILE (>= 64); too small refused."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_max_open_files() == max(64, soft // 2)
    assert BrokerConfig.from_env({"NETSCRIPT_LOG_MAX_OPEN_FILES": "100"}).max_open_files == 100
    assert BrokerConfig.from_env({}).max_open_files is None
    with pytest.raises(LogError, match="at least"):
        OpenFiles(8)

"""Opening a partition directory: what a crash or an interrupted cleaner left is repaired.

Segments are recovered oldest first (see ``Segment.recover``); the producer and transaction
state is rebuilt from their batch headers. After a segment whose tail had to be cut, or one
overlapping its predecessor, nothing later is trusted: those segments are deleted.
"""

from __future__ import annotations

from pathlib import Path

from services.log._batch import BatchHeader, control_type
from services.log._errors import KafkaError
from services.log._files import OpenFiles
from services.log._producer_state import ProducerStates, Transactions
from services.log._segment import SUFFIXES, Segment, fsync_dir, segment_name

_ABORT, _COMMIT = 0, 1


def recover_segments(
    directory: Path, start: int, files: OpenFiles
) -> tuple[list[Segment], ProducerStates, Transactions]:
    """Recover every segment in order; also the producer and transaction state they imply.

    ``start`` names the segment created when the directory holds none.
    """
    verify: set[int] = set()
    while True:
        producers, txns = ProducerStates(), Transactions()
        segments, unverified = _recover_once(directory, start, producers, txns, verify, files)
        if unverified is None:
            return segments, producers, txns
        # A closed segment (checked by headers only) had to be cut, so it now ends the log and
        # its remaining batches will be served and appended to: start over, verifying its CRCs
        # too. Rare (damage inside a closed segment), so replaying everything is fine.
        for segment in segments:
            segment.close()
        verify.add(unverified)


def _recover_once(
    directory: Path,
    start: int,
    producers: ProducerStates,
    txns: Transactions,
    verify: set[int],
    files: OpenFiles,
) -> tuple[list[Segment], int | None]:
    def visit(header: BatchHeader, control: bytes | None) -> None:
        producers.replay(header)
        if header.is_transactional and not header.is_control:
            txns.begin(header.producer_id, header.base_offset)
        elif control is not None and header.producer_id >= 0:
            try:
                kind = control_type(control)
            except KafkaError:
                return  # an undecodable marker ends nothing; readers skip control batches
            if kind in (_ABORT, _COMMIT):
                txns.end(
                    header.producer_id, commit=kind == _COMMIT, marker_offset=header.base_offset
                )

    bases = sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())
    segments: list[Segment] = []
    for i, base in enumerate(bases):
        expected = segments[-1].next_offset if segments else 0
        if base < expected:
            # A segment overlapping its predecessor cannot be trusted, nor anything after it.
            _delete_from(directory, bases[i:])
            break
        check_crc = i == len(bases) - 1 or base in verify
        segment, truncated = Segment.recover(
            directory, base, check_crc=check_crc, min_offset=expected, visit=visit, files=files
        )
        segments.append(segment)
        if truncated:
            # Whatever follows a cut tail is not trustworthy.
            _delete_from(directory, bases[i + 1 :])
            if not check_crc:
                return segments, base
            break
    if not segments:
        segments.append(Segment.create(directory, start, files=files))
        fsync_dir(directory)
    return segments, None


def _delete_from(directory: Path, bases: list[int]) -> None:
    for base in bases:
        _delete_files(directory, base)
    fsync_dir(directory)


def _delete_files(directory: Path, base_offset: int) -> None:
    stem = directory / segment_name(base_offset)
    for ext in SUFFIXES:
        Path(f"{stem}{ext}").unlink(missing_ok=True)


def remove_leftovers(directory: Path) -> None:
    """Delete what an interrupted compaction or segment deletion left behind."""
    for path in directory.iterdir():
        unfinished = path.name.endswith(".cleaned")
        orphan = path.suffix in SUFFIXES[1:] and not path.with_suffix(".log").exists()
        if unfinished or orphan:
            path.unlink()

"""Writer state of one stream: idempotent producers and the ``Stream-Seq`` high mark.

Pure decisions, applied in the order requests reach the stream's writer (the protocol requires
validation and append to be serialized per stream). The state is rebuilt from the stream's own
records after a restart: every append carries its producer tuple and ``Stream-Seq`` in headers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, kw_only=True, slots=True)
class ProducerClaim:
    """The ``Producer-Id``/``-Epoch``/``-Seq`` tuple of one append."""

    producer_id: str
    epoch: int
    seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ProducerState:
    """What the stream remembers of one producer: its epoch and highest accepted sequence."""

    epoch: int
    last_seq: int


class Verdict(enum.Enum):
    """What to do with an append, per the idempotent-producer rules."""

    ACCEPT = "accept"  # new data: append it (200)
    DUPLICATE = "duplicate"  # already appended: acknowledge without appending (204)
    STALE_EPOCH = "stale_epoch"  # a zombie of an older epoch (403, current epoch in headers)
    BAD_EPOCH_START = "bad_epoch_start"  # a new epoch must start at seq 0 (400)
    SEQ_GAP = "seq_gap"  # a sequence was skipped (409, expected/received in headers)


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    verdict: Verdict
    state: ProducerState | None  # the producer's state if this append is accepted
    current_epoch: int | None = None
    expected_seq: int | None = None


def decide(claim: ProducerClaim, state: ProducerState | None) -> Decision:
    """Apply the protocol's epoch then sequence validation to ``claim``."""
    if state is None:
        if claim.seq != 0:
            # An unknown producer (or one whose state a fork does not inherit) starts at 0.
            return Decision(verdict=Verdict.SEQ_GAP, state=None, expected_seq=0)
        return Decision(verdict=Verdict.ACCEPT, state=ProducerState(epoch=claim.epoch, last_seq=0))
    if claim.epoch < state.epoch:
        return Decision(verdict=Verdict.STALE_EPOCH, state=None, current_epoch=state.epoch)
    if claim.epoch > state.epoch:
        if claim.seq != 0:
            return Decision(verdict=Verdict.BAD_EPOCH_START, state=None)
        return Decision(verdict=Verdict.ACCEPT, state=ProducerState(epoch=claim.epoch, last_seq=0))
    if claim.seq <= state.last_seq:
        return Decision(verdict=Verdict.DUPLICATE, state=state)
    if claim.seq == state.last_seq + 1:
        return Decision(verdict=Verdict.ACCEPT, state=replace(state, last_seq=claim.seq))
    return Decision(verdict=Verdict.SEQ_GAP, state=None, expected_seq=state.last_seq + 1)


@dataclass(kw_only=True, slots=True)
class WriterState:
    """The mutable writer state of one stream (copied for a tentative group commit)."""

    producers: dict[str, ProducerState] = field(default_factory=dict)
    last_stream_seq: str | None = None
    closed_by: ProducerClaim | None = None

    def copy(self) -> WriterState:
        return WriterState(producers=dict(self.producers), last_stream_seq=self.last_stream_seq,
                           closed_by=self.closed_by)

    def stream_seq_ok(self, seq: str) -> bool:
        """``Stream-Seq`` must grow strictly, compared byte-wise."""
        return self.last_stream_seq is None or seq.encode() > self.last_stream_seq.encode()

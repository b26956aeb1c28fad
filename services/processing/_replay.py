"""Dropping the records faust hands an agent a second time in one process.

faust can rewind a partition to its committed offset after this process has already handled
records past it: at the end of table recovery it resumes the stream partitions *before* it
seeks them to their committed offsets (an await in between, during which the fetcher delivers
records from the previous position), and a fetch while the flow is paused seeks back too.
Under exactly-once the records handled before the rewind are in this process's open
transaction — committed with their offsets, or aborted with the whole process — so handling
them again would emit their effects twice (seen here: a dispatcher after ``kill -9`` recorded
the same pool report twice). :class:`ReplayGuard` remembers, per partition, the next offset
this process has not handled yet and tells the agent to skip anything below it.

Partitions this process gives up are forgotten: faust commits an exactly-once transaction
before it revokes, so whatever was handled is committed and the new owner starts after it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP, EventT


class ReplayGuard:
    """Per-partition high-water mark of what this process handled (see the module docs)."""

    def __init__(self, app: faust.App) -> None:
        self._next: dict[TP, int] = {}
        self.skipped = 0
        app.on_partitions_revoked.connect(self._forget)

    def first_time(self, event: EventT[Any]) -> bool:
        """``True`` if ``event`` was not handled by this process before (and mark it)."""
        message = event.message
        tp = message.tp
        if message.offset < self._next.get(tp, -1):
            self.skipped += 1
            return False
        self._next[tp] = message.offset + 1
        return True

    async def _forget(self, *args: Any, **kwargs: Any) -> None:
        # faust calls ``receiver(app, revoked, signal=...)``.
        revoked: set[TP] = next((set(a) for a in args if isinstance(a, (set, frozenset))), set())
        for tp in revoked:
            self._next.pop(tp, None)

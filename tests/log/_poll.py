"""Polling with a deadline: the suite's only way to wait for something to become true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "condition",
) -> None:
    """Re-evaluate ``check`` until it is true; fail with ``what`` after ``timeout`` seconds.

    ``what`` may be a function, called only on failure (e.g. to include a process's log).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        await asyncio.sleep(interval)

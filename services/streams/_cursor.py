"""``Stream-Cursor`` values for live responses (protocol section 10.1).

The cursor is the number of 20-second intervals since 2024-10-09T00:00:00Z. When a client echoes
a cursor that is not behind the current interval, the answer jumps ahead by a random 1-3600
seconds' worth of intervals, so a CDN never serves the same cached response in a loop.
"""

from __future__ import annotations

import random
import time

INTERVAL_SECONDS = 20
EPOCH = 1728432000  # 2024-10-09T00:00:00Z


def next_cursor(client_cursor: str | None, *, now: float | None = None) -> str:
    current = int(((time.time() if now is None else now) - EPOCH) // INTERVAL_SECONDS)
    if client_cursor is not None and client_cursor.isdigit():
        echoed = int(client_cursor)
        if echoed >= current:
            jitter = random.randint(1, 3600)
            return str(echoed + max(1, jitter // INTERVAL_SECONDS))
    return str(current)

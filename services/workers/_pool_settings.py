"""How a worker-pool process is sized: the seed's ``WORKER_*`` environment, read once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolSettings:
    """``pools_count`` pools of ``capacity`` credits each; ``urgent_percentage`` of each
    pool's capacity (rounded up) is kept for urgent work. A lease lasts ``lease_seconds``
    unless a heartbeat (every ``heartbeat_seconds``) extends it."""

    pools_count: int = 1
    capacity: int = 10
    urgent_percentage: float = 20.0
    heartbeat_seconds: float = 1.0
    lease_seconds: float = 3.0
    shutdown_grace_seconds: float = 30.0
    flush_interval: float = 0.001

    def __post_init__(self) -> None:
        if self.pools_count < 1 or self.capacity < 1:
            raise ValueError("a worker pool process needs at least one pool of capacity >= 1")
        if not 0 <= self.urgent_percentage <= 100:
            raise ValueError("WORKER_POOL_URGENT_PERCENTAGE must be between 0 and 100")
        if self.heartbeat_seconds <= 0 or self.lease_seconds <= self.heartbeat_seconds:
            raise ValueError("leases must outlast heartbeats: WORKER_LEASE_SECONDS must be "
                             "greater than WORKER_HEARTBEAT_SECONDS (> 0)")

    @property
    def urgent_reserved(self) -> int:
        """Credits of each pool only urgent work may take."""
        return min(self.capacity, math.ceil(self.capacity * self.urgent_percentage / 100))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PoolSettings:
        """Read ``WORKER_POOLS_COUNT``, ``WORKER_POOL_CAPACITY``,
        ``WORKER_POOL_URGENT_PERCENTAGE``, ``WORKER_HEARTBEAT_SECONDS`` and
        ``WORKER_LEASE_SECONDS`` (default: three heartbeats). Raises ``ValueError`` naming the
        variable that does not parse."""

        def number(name: str, default: float, kind: type[int] | type[float]) -> float:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ValueError(f"{name}={raw!r} is not {what}") from None

        heartbeat = number("WORKER_HEARTBEAT_SECONDS", 1.0, float)
        return cls(pools_count=int(number("WORKER_POOLS_COUNT", 1, int)),
                   capacity=int(number("WORKER_POOL_CAPACITY", 10, int)),
                   urgent_percentage=number("WORKER_POOL_URGENT_PERCENTAGE", 20.0, float),
                   heartbeat_seconds=heartbeat,
                   lease_seconds=number("WORKER_LEASE_SECONDS", 3 * heartbeat, float))

"""``netscript workers serve``: the :8091 app with its settings read from the environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from services.kernel import Settings
from services.workers._jobs import JobDefinition, Lane
from services.workers.api import DEFAULT_LANE_LIMITS, create_workers_app


def lane_limits_from_env(environ: Mapping[str, str]) -> dict[Lane, int]:
    """``WORKER_LANE_LIMIT_NORMAL`` / ``WORKER_LANE_LIMIT_URGENT`` (queued executions a lane
    may hold before triggers into it answer 429). Raises ``ValueError`` naming a bad one."""
    limits: dict[Lane, int] = dict(DEFAULT_LANE_LIMITS)
    lanes: tuple[Lane, ...] = ("normal", "urgent")
    for lane in lanes:
        name = f"WORKER_LANE_LIMIT_{lane.upper()}"
        raw = environ.get(name, "").strip()
        if raw:
            try:
                limits[lane] = int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not an integer") from None
            if limits[lane] < 1:
                raise ValueError(f"{name} must be at least 1")
    return limits


def create_workers_service(settings: Settings, jobs: Sequence[JobDefinition[Any]],
                           environ: Mapping[str, str]) -> FastAPI:
    """The workers API for ``jobs`` with the lane limits ``environ`` sets."""
    return create_workers_app(settings, jobs, lane_limits=lane_limits_from_env(environ))

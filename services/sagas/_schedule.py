"""``.schedule(cron)``: each cron time of a scheduled saga starts one instance.

At every cron time the processor publishes a ``ScheduleTick`` message to the saga, with the
tick's time (``scheduled_at``, ISO 8601 minute) as both the correlation key and the idempotency
key. Every processor replica publishes it; the deterministic key makes the second one land on
the same instance, which records it as a duplicate — so each tick runs once. Ticks missed
while no processor ran are not replayed (as with cron).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from services.sagas._builder import SCHEDULE_TICK
from services.sagas._engine import SagaEngine
from services.sagas._messages import SagaMessage
from services.sagas._records import bus_value, instance_key


class CronTicker:
    """Which scheduled sagas are due since the last call."""

    def __init__(self, engine: SagaEngine, *, start: datetime | None = None) -> None:
        self._sagas = {d.id: d.schedule for d in engine.definitions.values() if d.schedule}
        self._last = (start or datetime.now(UTC)).replace(second=0, microsecond=0)

    def due(self, now: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(bus key, bus value)`` of every tick after the previous call, up to ``now``."""
        if not self._sagas:
            return
        for saga_id, cron in self._sagas.items():
            times = croniter(cron, self._last)
            while (moment := times.get_next(datetime)) <= now:
                scheduled_at = moment.astimezone(UTC).isoformat(timespec="minutes")
                message = SagaMessage(
                    type=SCHEDULE_TICK, payload={"scheduled_at": scheduled_at},
                    correlation_key=scheduled_at, idempotency_key=f"cron:{scheduled_at}")
                yield instance_key(saga_id, scheduled_at), bus_value(saga_id, message)
        self._last = max(self._last, now - timedelta(seconds=now.second,
                                                    microseconds=now.microsecond))

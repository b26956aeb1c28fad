"""Applying a message with the definition's retry policy — the same for both store backends."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from services.sagas._engine import SagaEngine, Step
from services.sagas._errors import SagaHandlerError
from services.sagas._messages import SagaMessage
from services.sagas._records import SagaInstance, Source

log = logging.getLogger("netscript.sagas")


async def apply_with_retries(engine: SagaEngine, instance: SagaInstance | None, *,
                             saga_id: str, correlation_key: str, message: SagaMessage,
                             now: datetime, source: Source) -> Step:
    """``engine.apply``, retrying a raising handler with exponential backoff
    (``backoff_ms * 2**(attempt-1)``) up to the definition's ``max_attempts``; then the step
    that fails the instance and dead-letters the message.

    It awaits only between attempts, before the caller wrote anything — which the exactly-once
    argument of both runtimes needs.
    """
    retry = engine.definition(saga_id).retry
    attempt = 1
    while True:
        try:
            return engine.apply(instance, saga_id=saga_id, correlation_key=correlation_key,
                                message=message, now=now, source=source,
                                partition=source.partition, attempt=attempt)
        except SagaHandlerError as error:
            if attempt >= retry.max_attempts:
                log.warning("%s; the instance fails and the message is dead-lettered", error)
                return engine.fail(instance, saga_id=saga_id, correlation_key=correlation_key,
                                   message=message, error=error, attempts=attempt, now=now,
                                   source=source, partition=source.partition)
            await asyncio.sleep(retry.backoff_ms * 2 ** (attempt - 1) / 1000)
            attempt += 1

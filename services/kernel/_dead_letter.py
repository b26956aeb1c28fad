"""The dead-letter path: a record a consumer cannot handle is parked, never dropped.

A record that fails to decode (or whose handler exhausted its retries) is copied to
``<topic>.dlq`` with its key, value and headers intact, plus headers saying where it came from
and why it failed; the consumer then commits past it, so one bad record never stops a processor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from services.kernel._kafka import Published, Publisher

DLQ_SUFFIX = ".dlq"


class ConsumedRecord(Protocol):
    """What the dead-letter path needs of a consumed record (aiokafka's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Iterable[tuple[str, bytes]]: ...


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return topic + DLQ_SUFFIX


def dead_letter_headers(
    record: ConsumedRecord, error: BaseException, *, attempts: int = 1
) -> list[tuple[str, bytes]]:
    """The original headers plus ``x-error-*`` and ``x-original-*`` describing the failure."""
    headers = [(k, v) for k, v in record.headers if not k.startswith(("x-error", "x-original"))]
    headers += [
        ("x-error-type", type(error).__name__.encode()),
        ("x-error-message", str(error).encode()[:4096]),
        ("x-error-attempts", str(attempts).encode()),
        ("x-original-topic", record.topic.encode()),
        ("x-original-partition", str(record.partition).encode()),
        ("x-original-offset", str(record.offset).encode()),
    ]
    return headers


async def send_to_dead_letter(
    publisher: Publisher, record: ConsumedRecord, error: BaseException, *, attempts: int = 1
) -> Published:
    """Copy ``record`` to its dead-letter topic with the error in its headers."""
    return await publisher.publish(
        dead_letter_topic(record.topic), record.value, key=record.key,
        headers=dead_letter_headers(record, error, attempts=attempts),
    )

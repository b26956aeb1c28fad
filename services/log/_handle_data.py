"""Handlers of the data path: Produce, Fetch, ListOffsets, DeleteRecords."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from services.log._codec import Fields
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker
    from services.log._partition import PartitionLog

READ_COMMITTED = 1
LATEST = -1
EARLIEST = -2


def _now_ms() -> int:
    return int(time.time() * 1000)


async def produce(broker: Broker, ctx: RequestContext, req: Fields) -> Fields | None:
    acks = req["required_acks"]
    now = _now_ms()
    touched: list[PartitionLog] = []
    topics = []
    # Every append happens before the first await: requests of one connection are appended
    # in the order they were sent, which idempotent sequence numbers rely on.
    for topic in req["topics"]:
        results = []
        for part in topic["partitions"]:
            result: Fields = {
                "partition": part["partition"],
                "offset": -1,
                "timestamp": -1,
                "log_start_offset": -1,
                "error_message": None,
                "record_errors": [],
            }
            try:
                if acks not in (-1, 0, 1):
                    raise KafkaError(ErrorCode(21), f"acks must be -1, 0 or 1, not {acks}")
                log = broker.partition_for_write(topic["topic"], part["partition"])
                if not part["messages"]:
                    raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "the request has no records")
                appended = log.append(part["messages"], now_ms=now)
                touched.append(log)
                result.update(
                    error_code=ErrorCode.NONE,
                    offset=appended.base_offset,
                    log_start_offset=appended.log_start_offset,
                )
            except KafkaError as exc:
                result.update(
                    error_code=exc.code,
                    error_message=exc.message or None,
                    record_errors=[
                        {"batch_index": index, "batch_index_error_message": reason}
                        for index, reason in exc.record_errors
                    ],
                )
            results.append(result)
        topics.append({"topic": topic["topic"], "partitions": results})
    if touched:
        if acks == -1:
            # acks=all: acknowledged means fsynced. Concurrent producers share fsyncs.
            await asyncio.gather(*(log.sync() for log in set(touched)))
        broker.notify_appended()
    if acks == 0:
        return None
    return {"topics": topics, "throttle_time_ms": 0}


async def fetch(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    read_committed = req.get("isolation_level", 0) == READ_COMMITTED
    deadline = time.monotonic() + max(req["max_wait_time"], 0) / 1000
    min_bytes = req["min_bytes"]
    while True:
        # Take the wake-up event before reading, so an append that lands in between is seen.
        appended = broker.append_event()
        response, total, errors = _read_fetch(broker, req, read_committed)
        remaining = deadline - time.monotonic()
        if errors or total >= min_bytes or remaining <= 0 or broker.closing:
            return response
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(appended.wait(), remaining)


def _read_fetch(broker: Broker, req: Fields, read_committed: bool) -> tuple[Fields, int, bool]:
    budget = req.get("max_bytes", 0x7FFFFFFF)
    total = 0
    errors = False
    topics = []
    for topic in req["topics"]:
        results = []
        for part in topic["partitions"]:
            offset = part.get("fetch_offset", part.get("offset"))
            result: Fields = {
                "partition": part["partition"],
                "error_code": ErrorCode.NONE,
                "highwater_offset": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": None,
                "preferred_read_replica": -1,
                "message_set": b"",
            }
            try:
                log = broker.catalog.partition(topic["topic"], part["partition"])
                result.update(
                    highwater_offset=log.log_end_offset,
                    last_stable_offset=log.last_stable_offset,
                    log_start_offset=log.log_start_offset,
                )
                upper = log.last_stable_offset if read_committed else log.log_end_offset
                # Both limits are soft for the first batch of the response (so a batch larger
                # than them can still be consumed) and hard after that (KIP-74).
                limit = min(part["max_bytes"], budget)
                if limit > 0 or total == 0:
                    data = log.read(
                        offset, max(limit, 1), upper_bound=upper, at_least_one=total == 0
                    )
                    if read_committed and data:
                        result["aborted_transactions"] = [
                            {"producer_id": pid, "first_offset": first}
                            for pid, first in log.aborted_transactions(offset, upper)
                        ]
                    result["message_set"] = data
                    total += len(data)
                    budget -= len(data)
            except KafkaError as exc:
                result["error_code"] = exc.code
                errors = True
            results.append(result)
        topics.append({"topics": topic["topic"], "partitions": results})
    return (
        {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "topics": topics},
        total,
        errors,
    )


async def list_offsets(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    read_committed = req.get("isolation_level", 0) == READ_COMMITTED
    topics = []
    for topic in req["topics"]:
        results = []
        for part in topic["partitions"]:
            result: Fields = {
                "partition": part["partition"],
                "error_code": ErrorCode.NONE,
                "timestamp": -1,
                "offset": -1,
                "offsets": [],
                "leader_epoch": 0,
            }
            try:
                log = broker.catalog.partition(topic["topic"], part["partition"])
                wanted = part["timestamp"]
                if wanted == LATEST:
                    offset = log.last_stable_offset if read_committed else log.log_end_offset
                elif wanted == EARLIEST:
                    offset = log.log_start_offset
                else:
                    found = log.offset_for_timestamp(wanted)
                    offset = -1
                    if found is not None:
                        offset, result["timestamp"] = found
                result["offset"] = offset
                result["offsets"] = [offset] if offset >= 0 else []
            except KafkaError as exc:
                result["error_code"] = exc.code
            results.append(result)
        topics.append({"topic": topic["topic"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


async def delete_records(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    topics = []
    for topic in req["topics"]:
        results = []
        for part in topic["partitions"]:
            result: Fields = {
                "partition_index": part["partition_index"],
                "low_watermark": -1,
                "error_code": ErrorCode.NONE,
            }
            try:
                log = broker.catalog.partition(topic["name"], part["partition_index"])
                offset = part["offset"]
                if offset == -1:
                    offset = log.log_end_offset
                if not log.log_start_offset <= offset <= log.log_end_offset:
                    raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
                result["low_watermark"] = log.delete_records_before(offset)
            except KafkaError as exc:
                result["error_code"] = exc.code
            results.append(result)
        topics.append({"name": topic["name"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}

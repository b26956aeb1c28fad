"""A faust-streaming app used by the crash tests (run as ``python -m tests.log.faust_app``).

Input records are ``{"key": k, "n": i}``. Two tables: ``latest`` keeps the last ``n`` seen per
key, ``counts`` counts records per key. A record ``{"dump": id}`` makes the agent write both
tables, as held in memory right now, to the output topic — that is how the test sees what the
worker recovered from the changelogs after a ``kill -9``.
"""

from __future__ import annotations

import os
import sys

import faust

from services.processing import processor_app

app = processor_app(
    os.environ["FAUST_APP_ID"],
    bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
    guarantee=os.environ.get("FAUST_GUARANTEE", "at_least_once"),
    store="memory://",
    topic_partitions=1,
    datadir=os.environ.get("FAUST_DATADIR", "faust-data"),
    broker_commit_every=50,
    # A killed worker's partitions move after its session times out; keep that short.
    broker_session_timeout=8,
    broker_heartbeat_interval=1,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["FAUST_INPUT"], value_serializer="json")
sink = app.topic(os.environ["FAUST_OUTPUT"], value_serializer="json")
latest = app.Table("latest", default=int, partitions=1)
counts = app.Table("counts", default=int, partitions=1)


@app.agent(source)
async def process(stream: faust.StreamT) -> None:
    async for event in stream:
        if "dump" in event:
            await sink.send(
                value={"dump": event["dump"], "latest": dict(latest), "counts": dict(counts)}
            )
            continue
        latest[event["key"]] = event["n"]
        counts[event["key"]] += 1


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()

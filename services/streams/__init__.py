"""Durable streams: typed change logs on the log, served over HTTP/SSE on :4437.

Producers describe collections with :func:`define_stream_schema` and write upserts/deletes
through :func:`create_durable_stream`; consumers read over the Durable Streams protocol
(any client) or in-process with :func:`subscribe`. The server is :mod:`services.streams.api`.
"""

from services.streams._errors import (
    LogUnavailableError,
    StreamSchemaError,
    StreamsError,
    StreamsNotConfiguredError,
    StreamWriteError,
)
from services.streams._producer import DurableStreamProducer, create_durable_stream
from services.streams._schema import Collection, StreamSchema, define_stream_schema
from services.streams._subscribe import LatestValues, StreamChunk, inspect_stream_topic, subscribe
from services.streams._urls import build_stream_url, get_streams_auth, get_streams_url

__all__ = [
    "Collection",
    "DurableStreamProducer",
    "LatestValues",
    "LogUnavailableError",
    "StreamChunk",
    "StreamSchema",
    "StreamSchemaError",
    "StreamWriteError",
    "StreamsError",
    "StreamsNotConfiguredError",
    "build_stream_url",
    "create_durable_stream",
    "define_stream_schema",
    "get_streams_auth",
    "get_streams_url",
    "inspect_stream_topic",
    "subscribe",
]

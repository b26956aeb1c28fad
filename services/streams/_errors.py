"""Errors of the streams capability.

::

    NetScriptError
    └── StreamsError
        ├── LogUnavailableError      the log did not answer (HTTP 503 with Retry-After)
        ├── StreamsNotConfiguredError  no DURABLE_STREAMS_URL / services__streams__http__0
        └── StreamWriteError         the server refused a producer's write
"""

from __future__ import annotations

from services._errors import NetScriptError


class StreamsError(NetScriptError):
    """Base class of the streams capability's errors."""


class LogUnavailableError(StreamsError):
    """The log did not answer or refused an operation; retry when it is back."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the log is unavailable: {reason}; check KAFKA_BOOTSTRAP_SERVERS")


class OffsetTrimmedError(StreamsError):
    """The log no longer holds an offset (retention or compaction dropped it)."""

    def __init__(self, *, topic: str, offset: int) -> None:
        self.topic = topic
        self.offset = offset
        super().__init__(f"offset {offset} of {topic} is no longer retained")


class StreamRequestError(StreamsError):
    """A protocol request the server refuses; carries the HTTP status and headers to answer."""

    status = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(detail)


class BadStreamRequestError(StreamRequestError):
    """Malformed headers, offsets or body (400)."""


class StreamNotFoundError(StreamRequestError):
    """No stream at this path, or it expired (404)."""

    status = 404


class StreamGoneError(StreamRequestError):
    """The stream was deleted but forks still read its data (410)."""

    status = 410


class StreamConflictError(StreamRequestError):
    """The request conflicts with the stream's state or configuration (409)."""

    status = 409


class StaleProducerEpochError(StreamRequestError):
    """A producer of an older epoch was fenced (403)."""

    status = 403


class PayloadTooLargeError(StreamRequestError):
    """The body exceeds the server's limit (413)."""

    status = 413


class StreamsNotConfiguredError(StreamsError):
    """No streams server URL in the environment."""

    def __init__(self) -> None:
        super().__init__(
            "no streams server URL: set DURABLE_STREAMS_URL (e.g. http://127.0.0.1:4437) or run "
            "under the topology, which sets services__streams__http__0"
        )


class StreamSchemaError(StreamsError):
    """A value does not fit its collection's schema."""

    def __init__(self, *, collection: str, reason: str) -> None:
        self.collection = collection
        self.reason = reason
        super().__init__(f"invalid {collection!r} value: {reason}")


class StreamWriteError(StreamsError):
    """The streams server refused or never received a producer's writes."""

    def __init__(self, *, stream_path: str, reason: str) -> None:
        self.stream_path = stream_path
        self.reason = reason
        super().__init__(f"could not write to stream {stream_path}: {reason}")

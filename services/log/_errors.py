"""Errors of the embedded log.

::

    NetScriptError
    └── LogError
        ├── BrokerClosedError        the broker was used after it was closed, or reopened
        ├── StorageError             a data directory that cannot be used
        │   └── TooManyOpenFilesError    the process is out of file descriptors (transient)
        └── KafkaError               a protocol-level failure with a Kafka error code;
                                     handlers raise it and the server turns it into the
                                     response's ``error_code``
"""

from __future__ import annotations

import enum

from services._errors import NetScriptError


class ErrorCode(enum.IntEnum):
    """The Kafka protocol error codes the broker answers with."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    MESSAGE_TOO_LARGE = 10
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    UNSUPPORTED_SASL_MECHANISM = 33
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    INVALID_REQUEST = 42
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    INVALID_PRODUCER_ID_MAPPING = 49
    INVALID_TRANSACTION_TIMEOUT = 50
    CONCURRENT_TRANSACTIONS = 51
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    UNKNOWN_PRODUCER_ID = 59
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    MEMBER_ID_REQUIRED = 79
    GROUP_MAX_SIZE_REACHED = 81
    FENCED_INSTANCE_ID = 82
    GROUP_SUBSCRIBED_TO_TOPIC = 86
    INVALID_RECORD = 87
    PRODUCER_FENCED = 90
    RESOURCE_NOT_FOUND = 91
    DUPLICATE_RESOURCE = 92
    UNACCEPTABLE_CREDENTIAL = 93
    UNKNOWN_TOPIC_ID = 100
    MISMATCHED_ENDPOINT_TYPE = 114
    UNSUPPORTED_ENDPOINT_TYPE = 115


class LogError(NetScriptError):
    """Base class of the embedded log's errors."""


class BrokerClosedError(LogError):
    """The broker was used after ``close()``, or a closed broker was reopened."""


class StorageError(LogError):
    """A data directory or file that the broker cannot use."""


class TooManyOpenFilesError(StorageError):
    """A file could not be opened because the process has no descriptor left (EMFILE/ENFILE).

    Transient: connections hold the descriptors, and the operation can be retried once some
    close. ``path`` is the file that could not be opened.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class KafkaError(LogError):
    """A request failed with a Kafka protocol error code.

    Handlers raise it; the server puts ``code`` in the response so the client sees the same
    error a Kafka broker would give.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str = "",
        *,
        record_errors: list[tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message
        # (index in batch, reason) of the records at fault, for Produce v8 (KIP-467).
        self.record_errors = record_errors or []

"""Errors of the schema registry: the server's API errors, the client's and the codec's.

::

    NetScriptError
    └── RegistryError
        ├── RegistryUnavailableError        the registry did not answer (client side)
        ├── RegistryApiError                an error answered as {"error_code", "message"}
        │   ├── MalformedRequestError           400 / 400    the body is not JSON
        │   ├── SubjectNotFoundError            404 / 40401
        │   ├── VersionNotFoundError            404 / 40402
        │   ├── SchemaNotFoundError             404 / 40403
        │   ├── SubjectSoftDeletedError         404 / 40404
        │   ├── SubjectNotSoftDeletedError      404 / 40405
        │   ├── VersionSoftDeletedError         404 / 40406
        │   ├── VersionNotSoftDeletedError      404 / 40407
        │   ├── SubjectConfigNotFoundError      404 / 40408
        │   ├── IncompatibleSchemaError         409 / 409
        │   ├── InvalidSchemaError              422 / 42201
        │   ├── InvalidVersionError             422 / 42202
        │   ├── InvalidCompatibilityLevelError  422 / 42203
        │   └── StoreError                      500 / 50001  the log refused a read or write
        ├── SchemaValidationError           a value does not fit its schema (names the field)
        └── WireFormatError                 bytes are not Confluent-framed Avro, or do not decode

The server raises the :class:`RegistryApiError` subclasses and renders them in Confluent's error
shape; :class:`~services.registry.RegistryClient` raises the same classes from those bodies, so
``except SubjectNotFoundError`` works on both sides of the wire.
"""

from __future__ import annotations

from services._errors import NetScriptError


class RegistryError(NetScriptError):
    """Base class of the schema registry's errors."""


class RegistryUnavailableError(RegistryError):
    """The registry at ``url`` did not answer."""

    def __init__(self, *, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"the schema registry at {url} did not answer ({reason}); start it with "
            "`netscript registry serve` (or `netscript up`), or point SCHEMA_REGISTRY_URL / "
            "--registry at a running one"
        )


class RegistryApiError(RegistryError):
    """An error of the registry's REST API, with Confluent's ``error_code``.

    ``status`` is the HTTP status and ``error_code`` the finer code Confluent clients parse;
    ``subject``, ``version`` and ``schema_id`` name what the request was about, when known. Each
    subclass fixes ``status`` and ``error_code``; the base class takes them as arguments for
    codes a client does not know.
    """

    status: int = 500
    error_code: int = 50001

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        version: int | None = None,
        schema_id: int | None = None,
        status: int | None = None,
        error_code: int | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if error_code is not None:
            self.error_code = error_code
        self.message = message
        self.subject = subject
        self.version = version
        self.schema_id = schema_id
        super().__init__(message)


class MalformedRequestError(RegistryApiError):
    """The request body is not the JSON the endpoint expects."""

    status = 400
    error_code = 400


class SubjectNotFoundError(RegistryApiError):
    """No (live) version is registered under the subject."""

    status = 404
    error_code = 40401


class VersionNotFoundError(RegistryApiError):
    """The subject has no such (live) version."""

    status = 404
    error_code = 40402


class SchemaNotFoundError(RegistryApiError):
    """No schema has this id, or the subject has no version with this schema."""

    status = 404
    error_code = 40403


class SubjectSoftDeletedError(RegistryApiError):
    """The subject is already soft-deleted; only a permanent delete can follow."""

    status = 404
    error_code = 40404


class SubjectNotSoftDeletedError(RegistryApiError):
    """A permanent delete of a subject that was not soft-deleted first."""

    status = 404
    error_code = 40405


class VersionSoftDeletedError(RegistryApiError):
    """The version is already soft-deleted; only a permanent delete can follow."""

    status = 404
    error_code = 40406


class VersionNotSoftDeletedError(RegistryApiError):
    """A permanent delete of a version that was not soft-deleted first."""

    status = 404
    error_code = 40407


class SubjectConfigNotFoundError(RegistryApiError):
    """The subject has no compatibility level of its own."""

    status = 404
    error_code = 40408


class IncompatibleSchemaError(RegistryApiError):
    """The schema breaks the subject's compatibility level; ``messages`` say where."""

    status = 409
    error_code = 409

    def __init__(
        self, message: str, *, subject: str | None = None, messages: tuple[str, ...] = ()
    ) -> None:
        self.messages = messages
        super().__init__(message, subject=subject)


class InvalidSchemaError(RegistryApiError):
    """The text is not a valid Avro schema (or uses a feature this registry lacks)."""

    status = 422
    error_code = 42201


class InvalidVersionError(RegistryApiError):
    """A version that is neither ``latest`` nor an integer in [1, 2^31-1]."""

    status = 422
    error_code = 42202


class InvalidCompatibilityLevelError(RegistryApiError):
    """A compatibility level that is not one of NONE, BACKWARD, ..., FULL_TRANSITIVE."""

    status = 422
    error_code = 42203


class StoreError(RegistryApiError):
    """The log under the registry refused a read or a write."""

    status = 500
    error_code = 50001


API_ERRORS: dict[int, type[RegistryApiError]] = {
    cls.error_code: cls
    for cls in (
        MalformedRequestError, SubjectNotFoundError, VersionNotFoundError, SchemaNotFoundError,
        SubjectSoftDeletedError, SubjectNotSoftDeletedError, VersionSoftDeletedError,
        VersionNotSoftDeletedError, SubjectConfigNotFoundError, IncompatibleSchemaError,
        InvalidSchemaError, InvalidVersionError, InvalidCompatibilityLevelError, StoreError,
    )
}
"""Each API error class by its Confluent ``error_code`` (what the client raises)."""


class SchemaValidationError(RegistryError):
    """A value does not fit the schema it is encoded with.

    ``field`` is the path of the offending part from the root of the value (``headers.operation``,
    ``items[2]``; empty for the value itself), ``expected`` what the schema wants there and
    ``got`` what the value has.
    """

    def __init__(
        self, *, subject: str, schema_id: int, field: str, expected: str, got: str
    ) -> None:
        self.subject = subject
        self.schema_id = schema_id
        self.field = field
        self.expected = expected
        self.got = got
        where = f"field {field!r}" if field else "the value"
        super().__init__(
            f"value does not fit subject {subject!r} (schema id {schema_id}): {where} expected "
            f"{expected}, got {got}; fix the value, or register a schema that accepts it "
            f"(POST /subjects/{subject}/versions)"
        )


class WireFormatError(RegistryError):
    """Bytes that are not Confluent-framed Avro, or whose Avro body does not decode."""

    def __init__(self, reason: str, *, schema_id: int | None = None) -> None:
        self.reason = reason
        self.schema_id = schema_id
        super().__init__(
            f"cannot decode: {reason}; Confluent-framed Avro is the magic byte 0, a 4-byte "
            "big-endian schema id, then the Avro binary body (write it with AvroCodec.encode)"
        )

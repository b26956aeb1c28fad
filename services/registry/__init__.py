"""The schema registry: Avro schemas per subject, stored on the log, served Confluent's way.

- the server: :func:`create_registry_app` (``netscript registry serve``, port 8081) and
  :class:`SchemaRegistry`, its operations on the compacted ``_schemas`` topic;
- compatibility: :class:`CompatibilityLevel`, :func:`check_compatibility`,
  :func:`incompatibilities` (Avro's schema-resolution rules);
- producing and consuming: :class:`RegistryClient` (any Confluent-compatible registry) and
  :class:`AvroCodec` (Confluent's wire format: magic byte 0, 4-byte schema id, Avro body);
- values: :class:`AvroSchema`, :class:`RegisteredSchema`, :class:`SchemaVersion`;
- errors: :class:`RegistryError` and its tree (see ``_errors``).
"""

from typing import TYPE_CHECKING

from services.registry._client import DEFAULT_URL, RegisteredSchema, RegistryClient
from services.registry._codec import AvroCodec
from services.registry._compatibility import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    Incompatibility,
    can_read,
    check_compatibility,
    incompatibilities,
)
from services.registry._errors import (
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    MalformedRequestError,
    RegistryApiError,
    RegistryError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaValidationError,
    StoreError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
    WireFormatError,
)
from services.registry._registry import SchemaRegistry
from services.registry._schema import AvroSchema
from services.registry._state import SchemaVersion
from services.registry._store import DEFAULT_TOPIC
from services.registry._wire import frame, is_framed, unframe

if TYPE_CHECKING:
    from services.registry.api import RegistryConfig, create_registry_app

# The HTTP app pulls in FastAPI; importing the package for its codec or client (or the plugin,
# when `netscript up` builds the graph) should not pay for it.
_LAZY = {"RegistryConfig", "create_registry_app"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from services.registry import api

        return getattr(api, name)
    raise AttributeError(f"module 'services.registry' has no attribute {name!r}")

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_TOPIC",
    "DEFAULT_URL",
    "AvroCodec",
    "AvroSchema",
    "CompatibilityLevel",
    "Incompatibility",
    "IncompatibleSchemaError",
    "InvalidCompatibilityLevelError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "MalformedRequestError",
    "RegisteredSchema",
    "RegistryApiError",
    "RegistryClient",
    "RegistryConfig",
    "RegistryError",
    "RegistryUnavailableError",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SchemaValidationError",
    "SchemaVersion",
    "StoreError",
    "SubjectConfigNotFoundError",
    "SubjectNotFoundError",
    "SubjectNotSoftDeletedError",
    "SubjectSoftDeletedError",
    "VersionNotFoundError",
    "VersionNotSoftDeletedError",
    "VersionSoftDeletedError",
    "WireFormatError",
    "can_read",
    "check_compatibility",
    "create_registry_app",
    "frame",
    "incompatibilities",
    "is_framed",
    "unframe",
]

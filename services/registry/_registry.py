"""The registry's operations: what each REST endpoint does, on the state its topic holds.

Every write is decided under one lock, stored on the log (acks=all) and only then applied to the
in-memory state, so a response never reports a change the log does not have. One registry
process writes a given topic (``netscript up`` runs one); a second one would not see the first
one's writes until it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from services.registry._compatibility import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    check_compatibility,
)
from services.registry._errors import (
    IncompatibleSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    StoreError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from services.registry._schema import AvroSchema
from services.registry._state import (
    LATEST,
    Record,
    RecordFormatError,
    RegistryState,
    SchemaVersion,
    config_record,
    id_floor_record,
    schema_record,
)
from services.registry._store import DEFAULT_TOPIC, SchemaLog

logger = logging.getLogger(__name__)

_MAX_VERSION = 2**31 - 1


def parse_version(spec: str | int) -> int:
    """A version number from ``latest``, ``-1`` or ``1``..``2^31-1``; :data:`LATEST` for latest."""
    text = str(spec).strip()
    if text in ("latest", "-1"):
        return LATEST
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= _MAX_VERSION:
        raise InvalidVersionError(
            f"The specified version '{text}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"'
        )
    return number


def parse_schema_id(text: str | int) -> int:
    """A schema id from a path segment; :class:`SchemaNotFoundError` if it is not one."""
    try:
        return int(text)
    except ValueError:
        raise SchemaNotFoundError(
            f"Schema {text!r} not found: schema ids are integers returned by registering a "
            "schema (POST /subjects/{subject}/versions)"
        ) from None


class SchemaRegistry:
    """Subjects, versions and compatibility levels, stored on a compacted topic."""

    def __init__(self, log: SchemaLog, *, default_level: CompatibilityLevel = DEFAULT_LEVEL):
        self._log = log
        self._state = RegistryState()
        self._default_level = default_level
        self._lock = asyncio.Lock()
        self._parsed: dict[int, AvroSchema] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, bootstrap_servers: str, *, topic: str = DEFAULT_TOPIC, client_id: str = "registry",
        default_level: CompatibilityLevel = DEFAULT_LEVEL,
    ) -> AsyncIterator[SchemaRegistry]:
        """Connect to the log, replay ``topic`` and yield the registry it describes."""
        async with SchemaLog(bootstrap_servers, topic=topic, client_id=client_id) as log:
            registry = cls(log, default_level=default_level)
            await registry._load()
            yield registry

    async def _load(self) -> None:
        count = 0
        async for offset, record in self._log.replay():
            try:
                self._state.apply(record)
            except RecordFormatError as exc:
                raise StoreError(
                    f"record {offset} of {self._log.topic!r} is not a registry record ({exc}); "
                    "remove it with a tombstone for its key, or point the registry at its own "
                    "topic"
                ) from exc
            count += 1
        logger.info("registry replayed %d records of %s: %d subjects", count, self._log.topic,
                    len(self._state.subjects()))

    async def _store(self, records: list[Record]) -> None:
        await self._log.append(records)
        for record in records:
            self._state.apply(record)

    def _parse_stored(self, version: SchemaVersion) -> AvroSchema:
        parsed = self._parsed.get(version.schema_id)
        if parsed is None:
            parsed = self._parsed[version.schema_id] = AvroSchema.parse(version.schema)
        return parsed

    # ------------------------------------------------------------------ reads

    def subjects(self, *, deleted: bool = False, prefix: str = "") -> list[str]:
        """Subject names with a live version (any version, with ``deleted``)."""
        return [s for s in self._state.subjects(deleted=deleted) if s.startswith(prefix)]

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """The subject's version numbers, oldest first."""
        found = self._state.versions(subject, deleted=deleted)
        if not found:
            raise _subject_not_found(subject)
        return [version.version for version in found]

    def version(self, subject: str, spec: str | int, *, deleted: bool = False) -> SchemaVersion:
        """One version of a subject (``latest`` is the newest live one)."""
        number = parse_version(spec)
        if not self._state.versions(subject, deleted=deleted):
            raise _subject_not_found(subject)
        found = self._state.find(subject, number, deleted=deleted)
        if found is None:
            raise _version_not_found(subject, spec)
        return found

    def schema(self, schema_id: int) -> str:
        """The canonical text of schema ``schema_id``."""
        text = self._state.schema_text(schema_id)
        if text is None:
            raise SchemaNotFoundError(
                f"Schema {schema_id} not found; ids come from registering a schema "
                "(POST /subjects/{subject}/versions)", schema_id=schema_id)
        return text

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[SchemaVersion]:
        """The subject versions that use schema ``schema_id``."""
        self.schema(schema_id)
        return self._state.usages(schema_id, deleted=deleted)

    def lookup(self, subject: str, text: str, *, deleted: bool = False) -> SchemaVersion:
        """The version of ``subject`` whose schema is ``text`` (compared in canonical form)."""
        schema = AvroSchema.parse(text)
        versions = self._state.versions(subject, deleted=deleted)
        if not versions:
            raise _subject_not_found(subject)
        for version in reversed(versions):
            if version.schema == schema.canonical:
                return version
        raise SchemaNotFoundError(
            f"Schema not found under subject '{subject}'; register it first "
            f"(POST /subjects/{subject}/versions)", subject=subject)

    def compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """The level that applies to ``subject`` (its own, else the global one)."""
        if subject is not None:
            own = self._state.config(subject)
            if own is not None:
                return own
        return self._state.config(None) or self._default_level

    def subject_compatibility(
        self, subject: str, *, default_to_global: bool = False
    ) -> CompatibilityLevel:
        """The level set on ``subject`` itself (or the global one, with ``default_to_global``)."""
        own = self._state.config(subject)
        if own is not None:
            return own
        if default_to_global:
            return self.compatibility(None)
        raise SubjectConfigNotFoundError(
            f"Subject '{subject}' does not have subject-level compatibility configured; set one "
            f"with PUT /config/{subject}, or read the global level with ?defaultToGlobal=true",
            subject=subject)

    def test_compatibility(
        self, subject: str, text: str, spec: str | int | None = None
    ) -> list[str]:
        """Why ``text`` breaks the subject's level: against ``spec``, else as register checks."""
        schema = AvroSchema.parse(text)
        level = self.compatibility(subject)
        previous = (self._state.versions(subject) if spec is None
                    else [self.version(subject, spec)])
        return check_compatibility(
            schema, [(v.version, self._parse_stored(v)) for v in previous], level)

    # ------------------------------------------------------------------ writes

    async def register(self, subject: str, text: str) -> int:
        """Register ``text`` under ``subject``; returns its global id.

        The same schema again returns the id it already has. Raises
        :class:`InvalidSchemaError` and :class:`IncompatibleSchemaError`.
        """
        schema = AvroSchema.parse(text)
        async with self._lock:
            live = self._state.versions(subject)
            for version in live:
                if version.schema == schema.canonical:
                    return version.schema_id
            level = self.compatibility(subject)
            problems = check_compatibility(
                schema, [(v.version, self._parse_stored(v)) for v in live], level)
            if problems:
                raise IncompatibleSchemaError(
                    f'Schema being registered is incompatible with an earlier schema for subject '
                    f'"{subject}" (compatibility {level.value}), details: {problems}; evolve the '
                    "schema compatibly (e.g. give new fields defaults) or change the subject's "
                    f"level with PUT /config/{subject}",
                    subject=subject, messages=tuple(problems))
            schema_id = self._state.schema_id(schema.canonical) or self._state.max_id + 1
            version = SchemaVersion(subject=subject, version=self._state.next_version(subject),
                                    schema_id=schema_id, schema=schema.canonical)
            self._parsed.setdefault(schema_id, schema)
            await self._store([schema_record(version)])
            logger.info("registered %s version %d as id %d", subject, version.version, schema_id)
            return schema_id

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version, or (``permanent``) forget a soft-deleted subject."""
        async with self._lock:
            every = self._state.versions(subject, deleted=True)
            if not every:
                raise _subject_not_found(subject)
            live = [version for version in every if not version.deleted]
            if not permanent:
                if not live:
                    raise SubjectSoftDeletedError(
                        f"Subject '{subject}' was soft deleted. Set permanent=true to delete "
                        "permanently", subject=subject)
                await self._store([schema_record(dataclasses.replace(v, deleted=True))
                                   for v in live])
                return [version.version for version in live]
            if live:
                raise SubjectNotSoftDeletedError(
                    f"Subject '{subject}' was not deleted first before being permanently "
                    f"deleted; soft-delete it first (DELETE /subjects/{subject})",
                    subject=subject)
            records = [id_floor_record(self._state.max_id)]
            records += [schema_record(version, tombstone=True) for version in every]
            if self._state.config(subject) is not None:
                records.append(config_record(subject, None))
            await self._store(records)
            return [version.version for version in every]

    async def delete_version(
        self, subject: str, spec: str | int, *, permanent: bool = False
    ) -> int:
        """Soft-delete one version, or (``permanent``) forget a soft-deleted one."""
        number = parse_version(spec)
        async with self._lock:
            if not self._state.versions(subject, deleted=True):
                raise _subject_not_found(subject)
            target = self._state.find(subject, number,
                                      deleted=permanent or number != LATEST)
            if target is None:
                raise _version_not_found(subject, spec)
            if not permanent:
                if target.deleted:
                    raise VersionSoftDeletedError(
                        f"Subject '{subject}' Version {target.version} was soft deleted. Set "
                        "permanent=true to delete permanently",
                        subject=subject, version=target.version)
                await self._store([schema_record(dataclasses.replace(target, deleted=True))])
                return target.version
            if not target.deleted:
                raise VersionNotSoftDeletedError(
                    f"Subject '{subject}' Version {target.version} was not deleted first before "
                    f"being permanently deleted; soft-delete it first "
                    f"(DELETE /subjects/{subject}/versions/{target.version})",
                    subject=subject, version=target.version)
            await self._store([id_floor_record(self._state.max_id),
                               schema_record(target, tombstone=True)])
            return target.version

    async def set_compatibility(
        self, level: CompatibilityLevel, subject: str | None = None
    ) -> CompatibilityLevel:
        """Set the level of ``subject`` (``None``: the global level)."""
        async with self._lock:
            await self._store([config_record(subject, level)])
        return level

    async def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove the level of ``subject`` (``None``: the global one); returns the level it had."""
        async with self._lock:
            previous = self.compatibility(subject)
            if subject is not None and self._state.config(subject) is None and not (
                self._state.versions(subject, deleted=True)
            ):
                raise _subject_not_found(subject)
            if self._state.config(subject) is not None:
                await self._store([config_record(subject, None)])
            return previous


def _subject_not_found(subject: str) -> SubjectNotFoundError:
    return SubjectNotFoundError(
        f"Subject '{subject}' not found; register a schema under it first "
        f"(POST /subjects/{subject}/versions), or list the subjects (GET /subjects)",
        subject=subject)


def _version_not_found(subject: str, spec: str | int) -> VersionNotFoundError:
    number = parse_version(spec)
    return VersionNotFoundError(
        f"Version {spec} not found for subject '{subject}'; list its versions "
        f"(GET /subjects/{subject}/versions)",
        subject=subject, version=None if number == LATEST else number)

"""The registry's state and its records on the ``_schemas`` topic.

The topic is the only store: each record's key says what it describes and its value the latest
state of that thing, so log compaction keeps exactly the current state. The layout is
Confluent's (JSON keys and values):

=====================================================================  =========================
key                                                                    value
=====================================================================  =========================
``{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}``             ``{"subject","version",
                                                                       "id","schema","deleted"}``
                                                                       (null: deleted for good)
``{"keytype":"CONFIG","subject":S or null,"magic":0}``                 ``{"compatibilityLevel"}``
                                                                       (null: back to default)
``{"keytype":"ID_FLOOR","magic":0}``                                   ``{"id"}``: the highest
                                                                       id ever given out
=====================================================================  =========================

``ID_FLOOR`` is NetScript's own: it is written before a permanent delete removes the record of
the highest id, so an id is never given to a different schema after a compaction. Other key
types (Confluent's ``DELETE_SUBJECT``, ``MODE``, ``NOOP``) are ignored on replay.

:class:`RegistryState` applies records, whether replayed at start or just acknowledged by the
log, so the two paths cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.registry._compatibility import CompatibilityLevel

LATEST = -1
"""The version spec ``latest`` (Confluent also accepts ``-1``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SchemaVersion:
    """One version of a subject: which schema (id and canonical text), and whether deleted."""

    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """A record of the ``_schemas`` topic (``value=None`` is a tombstone)."""

    key: bytes
    value: bytes | None


def _json(document: dict[str, Any]) -> bytes:
    # Keys must be byte-identical for compaction: fixed member order, no whitespace.
    return json.dumps(document, separators=(",", ":")).encode()


def schema_record(version: SchemaVersion, *, tombstone: bool = False) -> Record:
    """The record storing ``version`` (or, with ``tombstone``, deleting it for good)."""
    key = _json({"keytype": "SCHEMA", "subject": version.subject, "version": version.version,
                 "magic": 1})
    if tombstone:
        return Record(key=key, value=None)
    return Record(key=key, value=_json({
        "subject": version.subject, "version": version.version, "id": version.schema_id,
        "schema": version.schema, "deleted": version.deleted,
    }))


def config_record(subject: str | None, level: CompatibilityLevel | None) -> Record:
    """The record setting (or, with ``level=None``, removing) a compatibility level."""
    key = _json({"keytype": "CONFIG", "subject": subject, "magic": 0})
    if level is None:
        return Record(key=key, value=None)
    return Record(key=key, value=_json({"compatibilityLevel": level.value}))


def id_floor_record(schema_id: int) -> Record:
    """The record remembering that ids up to ``schema_id`` are taken."""
    return Record(key=_json({"keytype": "ID_FLOOR", "magic": 0}), value=_json({"id": schema_id}))


class RecordFormatError(ValueError):
    """A record of the topic that is not in the layout above."""


class RegistryState:
    """Subjects, versions, schema ids and compatibility levels, as the records say."""

    def __init__(self) -> None:
        self._subjects: dict[str, dict[int, SchemaVersion]] = {}
        self._configs: dict[str | None, CompatibilityLevel] = {}
        self._texts: dict[int, str] = {}
        self._ids: dict[str, int] = {}
        self._references: dict[int, int] = {}
        self._max_id = 0

    # ------------------------------------------------------------------ applying records

    def apply(self, record: Record) -> None:
        """Apply one record; raises :class:`RecordFormatError` if it is malformed."""
        try:
            key = json.loads(record.key)
            keytype = key.get("keytype")
            value = None if record.value is None else json.loads(record.value)
            if keytype == "SCHEMA":
                self._apply_schema(str(key["subject"]), int(key["version"]), value)
            elif keytype == "CONFIG":
                subject = key.get("subject")
                # Confluent's config values may carry other settings and no level at all.
                if value is None or value.get("compatibilityLevel") is None:
                    self._configs.pop(subject, None)
                else:
                    self._configs[subject] = CompatibilityLevel.parse(
                        value["compatibilityLevel"])
            elif keytype == "ID_FLOOR" and value is not None:
                self._max_id = max(self._max_id, int(value["id"]))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RecordFormatError(f"{exc!r} in record {record.key!r}") from exc

    def _apply_schema(self, subject: str, number: int, value: dict[str, Any] | None) -> None:
        versions = self._subjects.setdefault(subject, {})
        old = versions.pop(number, None)
        if old is not None:
            self._release(old.schema_id)
        if value is not None:
            version = SchemaVersion(
                subject=subject, version=number, schema_id=int(value["id"]),
                schema=str(value["schema"]), deleted=bool(value.get("deleted", False)),
            )
            versions[number] = version
            self._references[version.schema_id] = self._references.get(version.schema_id, 0) + 1
            self._texts[version.schema_id] = version.schema
            self._ids.setdefault(version.schema, version.schema_id)
            self._max_id = max(self._max_id, version.schema_id)
        if not versions:
            del self._subjects[subject]

    def _release(self, schema_id: int) -> None:
        left = self._references.get(schema_id, 0) - 1
        if left > 0:
            self._references[schema_id] = left
            return
        self._references.pop(schema_id, None)
        text = self._texts.pop(schema_id, None)
        if text is not None and self._ids.get(text) == schema_id:
            del self._ids[text]

    # ------------------------------------------------------------------ queries

    def subjects(self, *, deleted: bool = False) -> list[str]:
        """Subjects with a live version (or any version, with ``deleted``), sorted."""
        return sorted(subject for subject, versions in self._subjects.items()
                      if deleted or any(not v.deleted for v in versions.values()))

    def versions(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        """The subject's live versions (all, with ``deleted``), oldest first."""
        versions = self._subjects.get(subject, {})
        return [versions[n] for n in sorted(versions) if deleted or not versions[n].deleted]

    def find(self, subject: str, number: int, *, deleted: bool = False) -> SchemaVersion | None:
        """Version ``number`` (or :data:`LATEST`) of ``subject``, if there is one."""
        if number == LATEST:
            live = self.versions(subject, deleted=deleted)
            return live[-1] if live else None
        found = self._subjects.get(subject, {}).get(number)
        if found is None or (found.deleted and not deleted):
            return None
        return found

    def schema_text(self, schema_id: int) -> str | None:
        """The canonical text of schema ``schema_id`` (kept while any version uses it)."""
        return self._texts.get(schema_id)

    def schema_id(self, canonical: str) -> int | None:
        """The id already given to this canonical text, if any."""
        return self._ids.get(canonical)

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[SchemaVersion]:
        """Every version using schema ``schema_id``, by subject then version."""
        return [version for subject in sorted(self._subjects)
                for version in self.versions(subject, deleted=deleted)
                if version.schema_id == schema_id]

    @property
    def max_id(self) -> int:
        """The highest schema id ever given out (0 before the first)."""
        return self._max_id

    def next_version(self, subject: str) -> int:
        """The number the subject's next version gets (deleted versions are not reused)."""
        return max(self._subjects.get(subject, {}), default=0) + 1

    def config(self, subject: str | None) -> CompatibilityLevel | None:
        """The level set for ``subject`` (``None``: the global one), if one was set."""
        return self._configs.get(subject)

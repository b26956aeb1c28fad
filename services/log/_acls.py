"""Access control lists: bindings, filters, and their durable store.

An ACL binding is Kafka's pair of a resource pattern (type, name, LITERAL or PREFIXED) and an
access control entry (principal, host, operation, ALLOW or DENY). CreateAcls adds bindings,
DescribeAcls lists those a filter matches and DeleteAcls removes them, with the validation and
matching rules of Kafka's authorizer (``ResourcePatternFilter``, ``AccessControlEntryFilter``).

Bindings are journaled (``meta/acls.journal``) before they are acknowledged, one entry per
request so a crash never keeps half of a CreateAcls or DeleteAcls.

The broker has no authentication: every client is anonymous. ACLs are therefore kept and
reported but not enforced, and the authorized operations that Metadata and DescribeGroups report
are every operation the resource type supports, as on a Kafka broker that allows everyone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TypeVar

from services.log._errors import ErrorCode, KafkaError, StorageError
from services.log._journal import Entry, Journal, JournalBacked


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class PermissionType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
# What an authorized-operations field holds when the client did not ask for it.
OPERATIONS_NOT_REQUESTED = -(2**31)

_OP = AclOperation
# Kafka's AclEntry.supportedOperations: what each resource type can be authorized for.
SUPPORTED_OPERATIONS: dict[ResourceType, frozenset[AclOperation]] = {
    ResourceType.TOPIC: frozenset(
        {_OP.READ, _OP.WRITE, _OP.CREATE, _OP.DESCRIBE, _OP.DELETE, _OP.ALTER}
        | {_OP.DESCRIBE_CONFIGS, _OP.ALTER_CONFIGS}
    ),
    ResourceType.GROUP: frozenset({_OP.READ, _OP.DESCRIBE, _OP.DELETE}),
    ResourceType.CLUSTER: frozenset(
        {_OP.CREATE, _OP.CLUSTER_ACTION, _OP.DESCRIBE_CONFIGS, _OP.ALTER_CONFIGS}
        | {_OP.IDEMPOTENT_WRITE, _OP.ALTER, _OP.DESCRIBE}
    ),
    ResourceType.TRANSACTIONAL_ID: frozenset({_OP.DESCRIBE, _OP.WRITE}),
    ResourceType.DELEGATION_TOKEN: frozenset({_OP.DESCRIBE}),
    ResourceType.USER: frozenset({_OP.CREATE_TOKENS, _OP.DESCRIBE_TOKENS}),
}


def authorized_operations(resource_type: ResourceType, *, requested: bool) -> int:
    """The bitfield (bit n = operation n) an anonymous client is allowed on a resource type."""
    if not requested:
        return OPERATIONS_NOT_REQUESTED
    return sum(1 << op for op in SUPPORTED_OPERATIONS[resource_type])


_E = TypeVar("_E", bound=enum.IntEnum)


def _known(kind: type[_E], code: int) -> _E:
    """Kafka's ``fromCode``: a code this broker does not know is UNKNOWN."""
    try:
        return kind(code)
    except ValueError:
        return kind(0)


def _invalid(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_REQUEST, message)


@dataclass(frozen=True, order=True, slots=True)
class AclBinding:
    """One ACL: a resource pattern and an access control entry."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int

    def validate(self) -> None:
        """Raise INVALID_REQUEST unless Kafka would store this binding."""
        if _known(ResourceType, self.resource_type) in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise _invalid(f"invalid resource type {self.resource_type}")
        pattern = _known(PatternType, self.pattern_type)
        if pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise _invalid(f"invalid pattern type {self.pattern_type}: use LITERAL or PREFIXED")
        if _known(AclOperation, self.operation) in (AclOperation.UNKNOWN, AclOperation.ANY):
            raise _invalid(f"invalid operation {self.operation}")
        permission = _known(PermissionType, self.permission_type)
        if permission not in (PermissionType.ALLOW, PermissionType.DENY):
            raise _invalid(f"invalid permission type {self.permission_type}: use ALLOW or DENY")
        if not self.resource_name:
            raise _invalid("the resource name must not be empty")
        if self.resource_type == ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            raise _invalid(f"the only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        kind, _, name = self.principal.partition(":")
        if not kind or not name:
            raise _invalid(f"principal {self.principal!r} is not of the form Type:Name")


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Which bindings DescribeAcls and DeleteAcls select; ``None`` strings match anything."""

    resource_type: int
    resource_name: str | None
    pattern_type: int
    principal: str | None
    host: str | None
    operation: int
    permission_type: int

    def validate(self) -> None:
        """Raise INVALID_REQUEST if a field is UNKNOWN (or a code this broker does not know)."""
        for kind, code in (
            (ResourceType, self.resource_type),
            (PatternType, self.pattern_type),
            (AclOperation, self.operation),
            (PermissionType, self.permission_type),
        ):
            if _known(kind, code) == 0:
                raise _invalid(f"the filter's {kind.__name__} {code} is unknown")

    def matches(self, acl: AclBinding) -> bool:
        return self._matches_pattern(acl) and self._matches_entry(acl)

    def _matches_pattern(self, acl: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, acl.resource_type):
            return False
        wanted = self.pattern_type
        if wanted not in (PatternType.ANY, PatternType.MATCH, acl.pattern_type):
            return False
        if self.resource_name is None:
            return True
        if wanted in (PatternType.ANY, acl.pattern_type):
            return self.resource_name == acl.resource_name
        # MATCH: the bindings that would apply to a resource of exactly this name.
        if acl.pattern_type == PatternType.LITERAL:
            return acl.resource_name in (self.resource_name, WILDCARD)
        return self.resource_name.startswith(acl.resource_name)

    def _matches_entry(self, acl: AclBinding) -> bool:
        return (
            self.principal in (None, acl.principal)
            and self.host in (None, acl.host)
            and self.operation in (AclOperation.ANY, acl.operation)
            and self.permission_type in (PermissionType.ANY, acl.permission_type)
        )


class AclStore(JournalBacked):
    """The broker's ACL bindings, durable in a journal. Use :meth:`open`."""

    _kind = "ACL store"

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self._acls: set[AclBinding] = set()

    @classmethod
    def open(cls, path: Path) -> AclStore:
        """Open (or create) the store at ``path``, replay it and compact it to a snapshot."""
        journal = Journal.open(path)
        store = cls(journal)
        try:
            for entry in journal.replay():
                store._apply(entry)
            journal.rewrite([_entry("add", sorted(store._acls))] if store._acls else [])
        except BaseException:
            journal.close()
            raise
        return store

    def create(self, bindings: Iterable[AclBinding]) -> None:
        """Add validated bindings; adding one that exists is a no-op. Durable on return."""
        new = sorted(set(bindings) - self._acls)
        if new:
            self._write(_entry("add", new))
        else:
            self._check_open()

    def describe(self, acl_filter: AclFilter) -> list[AclBinding]:
        """The bindings ``acl_filter`` matches, in a stable order."""
        self._check_open()
        return sorted(acl for acl in self._acls if acl_filter.matches(acl))

    def delete(self, filters: Sequence[AclFilter]) -> list[list[AclBinding]]:
        """Remove every binding any filter matches; per filter, the bindings it matched.

        As in Kafka, a binding two filters match is reported by both and removed once.
        """
        matched = [self.describe(f) for f in filters]
        gone = sorted({acl for acls in matched for acl in acls})
        if gone:
            self._write(_entry("remove", gone))
        return matched

    def _write(self, entry: Entry) -> None:
        self._check_open().append(entry)
        self._apply(entry)

    def _apply(self, entry: Entry) -> None:
        try:
            acls = {AclBinding(*fields) for fields in entry["acls"]}
            if entry["op"] == "add":
                self._acls |= acls
            elif entry["op"] == "remove":
                self._acls -= acls
            else:
                raise StorageError(
                    f"unknown ACL journal entry {entry['op']!r}; the data directory was written "
                    "by a newer broker, run that version"
                )
        except (KeyError, TypeError) as exc:
            raise StorageError(f"malformed ACL journal entry {entry!r}: {exc}") from exc


def _entry(op: str, acls: Sequence[AclBinding]) -> Entry:
    return {"op": op, "acls": [list(astuple(acl)) for acl in acls]}

"""Users' SCRAM credentials (KIP-554), durable in a journal.

AlterUserScramCredentials brings a salted password (the client ran PBKDF2 over the password,
salt and iteration count); like Kafka, the broker keeps only the salt, the iteration count and
the stored and server keys derived from it (RFC 5802), never the salted password itself.
DescribeUserScramCredentials reports each user's mechanisms and iteration counts. Validation and
error codes follow Kafka's ``ScramControlManager``; one request is one journal entry, so its
changes survive a crash together or not at all.

The broker has no SASL, so the credentials are managed but not used to authenticate anyone.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.log._errors import ErrorCode, StorageError
from services.log._journal import Entry, Journal, JournalBacked


class ScramMechanism(enum.IntEnum):
    UNKNOWN = 0
    SCRAM_SHA_256 = 1
    SCRAM_SHA_512 = 2


_HASHES = {ScramMechanism.SCRAM_SHA_256: "sha256", ScramMechanism.SCRAM_SHA_512: "sha512"}
MIN_ITERATIONS = 4096  # both mechanisms' minimum in Kafka
MAX_ITERATIONS = 16384


@dataclass(frozen=True, slots=True)
class Upsertion:
    user: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes


@dataclass(frozen=True, slots=True)
class Deletion:
    user: str
    mechanism: int


@dataclass(frozen=True, slots=True)
class UserResult:
    """The answer for one user: an error, or its ``(mechanism, iterations)`` pairs."""

    user: str
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None
    credentials: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Credential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def _derive(mechanism: ScramMechanism, upsertion: Upsertion) -> _Credential:
    digest = _HASHES[mechanism]
    client_key = hmac.new(upsertion.salted_password, b"Client Key", digest).digest()
    return _Credential(
        salt=upsertion.salt,
        stored_key=hashlib.new(digest, client_key).digest(),
        server_key=hmac.new(upsertion.salted_password, b"Server Key", digest).digest(),
        iterations=upsertion.iterations,
    )


def _mechanism(code: int) -> ScramMechanism:
    try:
        return ScramMechanism(code)
    except ValueError:
        return ScramMechanism.UNKNOWN


class ScramStore(JournalBacked):
    """SCRAM credentials by (user, mechanism). Use :meth:`open`."""

    _kind = "SCRAM credential store"

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self._credentials: dict[tuple[str, int], _Credential] = {}

    @classmethod
    def open(cls, path: Path) -> ScramStore:
        """Open (or create) the store at ``path``, replay it and compact it to a snapshot."""
        journal = Journal.open(path)
        store = cls(journal)
        try:
            for entry in journal.replay():
                store._apply(entry)
            snapshot = _entry([], sorted(store._credentials.items()))
            journal.rewrite([snapshot] if store._credentials else [])
        except BaseException:
            journal.close()
            raise
        return store

    def describe(self, users: Sequence[str] | None) -> list[UserResult]:
        """Each named user's credentials (every user's if ``users`` is empty or None)."""
        self._check_open()
        if not users:
            users = sorted({user for user, _ in self._credentials})
        counts: dict[str, int] = {}
        for user in users:
            counts[user] = counts.get(user, 0) + 1
        results = []
        for user, count in counts.items():
            if count > 1:
                message = f"Cannot describe SCRAM credentials for the same user twice: {user}"
                results.append(UserResult(user, ErrorCode.DUPLICATE_RESOURCE, message))
                continue
            found = sorted(
                (mechanism, credential.iterations)
                for (name, mechanism), credential in self._credentials.items()
                if name == user
            )
            if found:
                results.append(UserResult(user, credentials=found))
            else:
                message = f"Attempt to describe a user credential that does not exist: {user}"
                results.append(UserResult(user, ErrorCode.RESOURCE_NOT_FOUND, message))
        return results

    def alter(
        self, deletions: Sequence[Deletion], upsertions: Sequence[Upsertion]
    ) -> list[UserResult]:
        """Apply the valid changes at once; one result per user named.

        A user named twice in one request is refused (DUPLICATE_RESOURCE) with none of its
        changes applied, as in Kafka.
        """
        self._check_open()
        errors: dict[str, UserResult] = {}
        deletes: dict[str, Deletion] = {}
        upserts: dict[str, Upsertion] = {}
        changes: list[Deletion | Upsertion] = [*deletions, *upsertions]
        for change in changes:
            user = change.user
            if user in errors:
                continue
            if deletes.pop(user, None) is not None or upserts.pop(user, None) is not None:
                message = "A user credential cannot be altered twice in the same request"
                errors[user] = UserResult(user, ErrorCode.DUPLICATE_RESOURCE, message)
                continue
            error = self._validate(change)
            if error is not None:
                errors[user] = error
            elif isinstance(change, Deletion):
                deletes[user] = change
            else:
                upserts[user] = change
        changed = [
            ((u.user, u.mechanism), _derive(ScramMechanism(u.mechanism), u))
            for u in upserts.values()
        ]
        if deletes or changed:
            removed = [(d.user, d.mechanism) for d in deletes.values()]
            self._write(_entry(removed, changed))
        return [
            *(UserResult(user) for user in deletes),
            *(UserResult(user) for user in upserts),
            *errors.values(),
        ]

    def _validate(self, change: Deletion | Upsertion) -> UserResult | None:
        user = change.user
        if not user:
            return UserResult(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
        if _mechanism(change.mechanism) is ScramMechanism.UNKNOWN:
            message = f"Unknown SCRAM mechanism {change.mechanism}"
            return UserResult(user, ErrorCode.UNSUPPORTED_SASL_MECHANISM, message)
        if isinstance(change, Deletion):
            if (user, change.mechanism) not in self._credentials:
                message = "Attempt to delete a user credential that does not exist"
                return UserResult(user, ErrorCode.RESOURCE_NOT_FOUND, message)
        elif change.iterations < MIN_ITERATIONS:
            return UserResult(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations")
        elif change.iterations > MAX_ITERATIONS:
            return UserResult(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
        return None

    def _write(self, entry: Entry) -> None:
        self._check_open().append(entry)
        self._apply(entry)

    def _apply(self, entry: Entry) -> None:
        try:
            if entry["op"] != "alter":
                raise StorageError(
                    f"unknown SCRAM journal entry {entry['op']!r}; the data directory was "
                    "written by a newer broker, run that version"
                )
            for user, mechanism in entry["delete"]:
                self._credentials.pop((user, mechanism), None)
            for user, mechanism, iterations, salt, stored_key, server_key in entry["upsert"]:
                self._credentials[(user, mechanism)] = _Credential(
                    salt=base64.b64decode(salt),
                    stored_key=base64.b64decode(stored_key),
                    server_key=base64.b64decode(server_key),
                    iterations=iterations,
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"malformed SCRAM journal entry {entry!r}: {exc}") from exc


def _entry(
    removed: Sequence[tuple[str, int]], changed: Sequence[tuple[tuple[str, int], _Credential]]
) -> Entry:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "op": "alter",
        "delete": [list(key) for key in removed],
        "upsert": [
            [user, mechanism, c.iterations, b64(c.salt), b64(c.stored_key), b64(c.server_key)]
            for (user, mechanism), c in changed
        ],
    }

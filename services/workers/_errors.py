"""Errors of the background-jobs capability.

::

    NetScriptError
    └── WorkersError
        ├── JobDefinitionError      a job was defined wrongly (raised at definition time)
        ├── UnknownJobError         a job id that is not registered
        ├── JobPayloadError         a payload does not validate against the job's model
        ├── LeaseLostError          the execution's lease was revoked or expired (in a handler)
        └── AdmissionRejectedError  a lane's backlog is over its limit; retry later
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services._errors import NetScriptError


class WorkersError(NetScriptError):
    """Base class of the background-jobs capability's errors."""


class JobDefinitionError(WorkersError):
    """A job definition is invalid; the message says what to change."""

    def __init__(self, job_id: str, problem: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r}: {problem}")


class UnknownJobError(WorkersError):
    """No registered job has this id."""

    def __init__(self, job_id: str, known: Sequence[str] = ()) -> None:
        self.job_id = job_id
        self.known = tuple(known)
        hint = f"; registered: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"no job {job_id!r} is registered{hint}; define it with define_job() "
                         "and list it in NETSCRIPT_JOBS")


class JobPayloadError(WorkersError):
    """A payload failed the job's validation; ``errors`` names each field at fault."""

    def __init__(self, job_id: str, errors: Sequence[Mapping[str, Any]]) -> None:
        self.job_id = job_id
        self.errors = tuple(errors)
        fields = ", ".join(str(e.get("field", "?")) for e in errors) or "payload"
        super().__init__(f"invalid payload for job {job_id!r} ({fields}); fix the fields named "
                         "in .errors")


class LeaseLostError(WorkersError):
    """The execution's lease is gone (expired, revoked, cancelled): stop working on it; a
    result recorded now would be rejected by its fencing token."""

    def __init__(self, execution_id: str, token: int, reason: str) -> None:
        self.execution_id = execution_id
        self.token = token
        self.reason = reason
        super().__init__(f"lease {token} of execution {execution_id} is lost ({reason})")


class AdmissionRejectedError(WorkersError):
    """The lane's backlog passed its limit; retry after ``retry_after`` seconds."""

    def __init__(self, lane: str, backlog: int, limit: int, retry_after: int) -> None:
        self.lane = lane
        self.backlog = backlog
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"the {lane} lane holds {backlog} queued executions (limit {limit}); "
                         f"retry in {retry_after}s")

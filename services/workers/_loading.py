"""Which jobs a process knows: ``module:attribute`` references to definitions.

``NETSCRIPT_JOBS`` (or ``--jobs``) lists them, comma-separated; an attribute may be one
definition or an iterable of them. The default is the seed's examples.
"""

from __future__ import annotations

from typing import Any

from services.kernel._references import load_references
from services.workers._errors import WorkersError
from services.workers._jobs import JobDefinition

DEFAULT_JOBS = "services.workers.examples:EXAMPLES"


def load_jobs(spec: str = DEFAULT_JOBS) -> list[JobDefinition[Any]]:
    """The job definitions ``spec`` names (``"pkg.jobs:send_mail, pkg.jobs:ALL"``).

    Raises :class:`WorkersError` naming a reference that does not resolve to definitions, or
    a job id defined twice.
    """
    found: dict[str, JobDefinition[Any]] = {}
    for job in load_references(spec, JobDefinition, what="job", error=WorkersError,
                               how="build one with define_job(...)"):
        if job.id in found and found[job.id] is not job:
            raise WorkersError(f"job {job.id!r} is defined twice; job ids must be unique")
        found[job.id] = job
    return list(found.values())

"""Which jobs a process knows: ``module:attribute`` references to definitions.

``NETSCRIPT_JOBS`` (or ``--jobs``) lists them, comma-separated; an attribute may be one
definition or an iterable of them. The default is the seed's examples.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from services.workers._errors import WorkersError
from services.workers._jobs import JobDefinition

DEFAULT_JOBS = "services.workers.examples:EXAMPLES"


def load_jobs(spec: str = DEFAULT_JOBS) -> list[JobDefinition[Any]]:
    """The job definitions ``spec`` names (``"pkg.jobs:send_mail, pkg.jobs:ALL"``).

    Raises :class:`WorkersError` naming a reference that does not resolve to definitions, or
    a job id defined twice.
    """
    found: dict[str, JobDefinition[Any]] = {}
    for reference in (part.strip() for part in spec.split(",")):
        if not reference:
            continue
        module_name, _, attribute = reference.partition(":")
        if not attribute:
            raise WorkersError(f"job reference {reference!r} needs the form module:attribute")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise WorkersError(f"cannot load jobs from {reference!r}: {exc}") from exc
        items = [value] if isinstance(value, JobDefinition) else value
        if not isinstance(items, Iterable) or not all(
                isinstance(item, JobDefinition) for item in items):
            raise WorkersError(f"{reference!r} is not a job definition (or a list of them); "
                               "build one with define_job(...)")
        for job in items:
            if job.id in found and found[job.id] is not job:
                raise WorkersError(f"job {job.id!r} is defined twice (in {reference!r}); "
                                   "job ids must be unique")
            found[job.id] = job
    return list(found.values())

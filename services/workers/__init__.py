"""Background jobs: credit-based dispatch with urgent lanes, leases and heartbeats.

Define a job with :func:`define_job` (an async handler getting a :class:`JobContext`, a
pydantic payload model, a :class:`RetryPolicy`, a timeout, a lane) and return
:func:`create_success_result` / :func:`create_failure_result`. Trigger it through the
:8091 API (``netscript workers serve``) or a :class:`JobClient`; ``netscript workers
dispatch`` runs the dispatcher (one owner of every lease, exactly-once on the log) and
``netscript workers run`` the worker pools. See docs/workers.md.
"""

from services.workers._context import JobContext, LeaseTracker
from services.workers._errors import (
    AdmissionRejectedError,
    JobDefinitionError,
    JobPayloadError,
    LeaseLostError,
    UnknownJobError,
    WorkersError,
)
from services.workers._jobs import (
    LANES,
    JobDefinition,
    JobHandler,
    JobResult,
    Lane,
    RetryPolicy,
    create_failure_result,
    create_success_result,
    define_job,
    define_job_handler,
)
from services.workers._loading import DEFAULT_JOBS, load_jobs
from services.workers._records import (
    TERMINAL,
    Assignment,
    AttemptError,
    Execution,
    JobRequest,
    Lease,
    PoolState,
    Status,
    execution_id_for,
)

__all__ = [
    "DEFAULT_JOBS",
    "LANES",
    "TERMINAL",
    "AdmissionRejectedError",
    "Assignment",
    "AttemptError",
    "Execution",
    "JobContext",
    "JobDefinition",
    "JobDefinitionError",
    "JobHandler",
    "JobPayloadError",
    "JobRequest",
    "JobResult",
    "Lane",
    "Lease",
    "LeaseLostError",
    "LeaseTracker",
    "PoolState",
    "RetryPolicy",
    "Status",
    "UnknownJobError",
    "WorkersError",
    "create_failure_result",
    "create_success_result",
    "define_job",
    "define_job_handler",
    "execution_id_for",
    "load_jobs",
]

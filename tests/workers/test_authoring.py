"""Defining jobs and configuring pools: misuse fails early with a message saying what to do."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from services.workers import (
    JobDefinitionError,
    JobPayloadError,
    RetryPolicy,
    WorkersError,
    create_failure_result,
    create_success_result,
    define_job,
    define_job_handler,
    execution_id_for,
    load_jobs,
)
from services.workers._pool_settings import PoolSettings
from services.workers._records import JobRequest, requests_from_json
from services.workers._service import lane_limits_from_env


class Payload(BaseModel):
    user_id: str


async def handler(ctx: Any) -> None:
    return None


def test_define_job_builds_a_frozen_definition_that_validates_payloads() -> None:
    """The definition carries its policy; validate() returns the model or names the field."""
    job = define_job("send-mail", handler, payload=Payload, timeout=5, lane="urgent",
                     retry=RetryPolicy(max_attempts=4))
    assert job.lane == "urgent"
    assert job.retry.max_attempts == 4
    assert job.validate({"user_id": "u"}) == Payload(user_id="u")
    with pytest.raises(JobPayloadError) as caught:
        job.validate({})
    assert caught.value.errors[0]["field"] == "user_id"
    assert "user_id" in str(caught.value)
    with pytest.raises(AttributeError):
        job.lane = "normal"  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"job_id": "Send Mail"}, "lowercase"),
    ({"handler": lambda ctx: None}, "async"),
    ({"payload": dict}, "pydantic model"),
    ({"lane": "fast"}, "lane must be"),
    ({"timeout": 0}, "timeout must be a positive"),
    ({"preempt_stuck": True}, "needs stuck_after"),
])
def test_misuse_fails_at_definition_time(kwargs: dict[str, Any], message: str) -> None:
    """A bad id, a sync handler, a non-model payload, an unknown lane, a zero timeout, or
    preemption without a stuck threshold: JobDefinitionError saying what to change."""
    arguments: dict[str, Any] = {"job_id": "send-mail", "handler": handler, **kwargs}
    with pytest.raises(JobDefinitionError, match=message):
        define_job(arguments.pop("job_id"), arguments.pop("handler"), **arguments)


def test_results_and_handlers() -> None:
    """Results carry data/error/retryable; define_job_handler refuses a sync function."""
    assert create_success_result({"a": 1}).ok
    failure = create_failure_result("no", retryable=False)
    assert (failure.ok, failure.error, failure.retryable) == (False, "no", False)
    assert define_job_handler(handler) is handler
    with pytest.raises(TypeError, match="async"):
        define_job_handler(lambda ctx: None)  # type: ignore[arg-type,return-value]


def test_retry_backoff_grows_and_is_capped() -> None:
    """backoff * multiplier ** (attempt - 1), at most max_backoff; nonsense is refused."""
    policy = RetryPolicy(max_attempts=5, backoff=0.5, multiplier=3, max_backoff=4)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.0]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_idempotency_keys_name_one_execution() -> None:
    """The same job and key give the same id; no key gives a fresh one each time."""
    assert execution_id_for("a", "k") == execution_id_for("a", "k")
    assert execution_id_for("a", "k") != execution_id_for("b", "k")
    assert execution_id_for("a", None) != execution_id_for("a", None)


def test_a_batch_record_is_all_valid_or_rejected() -> None:
    """A lane record holds one request or a batch; one bad request rejects the batch."""
    job = define_job("send-mail", handler)
    good = JobRequest.for_job(job, {}).to_json()
    assert len(requests_from_json({"requests": [good, good]})) == 2
    assert requests_from_json(good)[0].job_id == "send-mail"
    with pytest.raises(ValueError, match="lane"):
        requests_from_json({"requests": [good, {**good, "lane": "fast"}]})
    with pytest.raises(ValueError, match="non-empty"):
        requests_from_json({"requests": []})


def test_pool_settings_from_the_seed_environment() -> None:
    """WORKER_* variables size the pools; the urgent share rounds up; leases default to three
    heartbeats; a bad value names its variable."""
    settings = PoolSettings.from_env({
        "WORKER_POOLS_COUNT": "3", "WORKER_POOL_CAPACITY": "7",
        "WORKER_POOL_URGENT_PERCENTAGE": "20", "WORKER_HEARTBEAT_SECONDS": "0.5"})
    assert (settings.pools_count, settings.capacity, settings.urgent_reserved) == (3, 7, 2)
    assert settings.lease_seconds == 1.5
    assert PoolSettings.from_env({}).capacity == 10
    with pytest.raises(ValueError, match="WORKER_POOL_CAPACITY"):
        PoolSettings.from_env({"WORKER_POOL_CAPACITY": "many"})
    with pytest.raises(ValueError, match="outlast"):
        PoolSettings.from_env({"WORKER_HEARTBEAT_SECONDS": "2", "WORKER_LEASE_SECONDS": "1"})


def test_lane_limits_and_job_loading_errors() -> None:
    """WORKER_LANE_LIMIT_* parse or name the variable; a bad job reference says why."""
    assert lane_limits_from_env({"WORKER_LANE_LIMIT_URGENT": "7"})["urgent"] == 7
    with pytest.raises(ValueError, match="WORKER_LANE_LIMIT_NORMAL"):
        lane_limits_from_env({"WORKER_LANE_LIMIT_NORMAL": "x"})
    assert {j.id for j in load_jobs()} == {"create-user-settings", "generate-report",
                                           "send-notification"}
    with pytest.raises(WorkersError, match="module:attribute"):
        load_jobs("services.workers.examples")
    with pytest.raises(WorkersError, match="not a job definition"):
        load_jobs("services.workers.examples:seed_requests")

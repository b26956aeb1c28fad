"""The seed's jobs, registered by default (``NETSCRIPT_JOBS`` replaces them).

- ``create-user-settings`` — creates a user's settings and publishes ``UserSettingsCreated``
  through the saga publisher; the ``user-settings-saga`` consumes it and completes (the
  choreography across the plugin boundary).
- ``generate-report`` — a long job that heartbeats its progress (normal lane).
- ``send-notification`` — a short job on the urgent lane.

``POST /api/v1/workers/seed`` triggers a batch of them (:func:`seed_requests`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.workers._context import JobContext
from services.workers._jobs import (
    JobDefinition,
    JobResult,
    RetryPolicy,
    create_failure_result,
    create_success_result,
    define_job,
    define_job_handler,
)


class CreateUserSettings(BaseModel):
    """Payload of ``create-user-settings`` (``userId`` as in the seed, or ``user_id``)."""

    model_config = ConfigDict(populate_by_name=True)
    user_id: str = Field(alias="userId", min_length=1)


@define_job_handler
async def create_user_settings(ctx: JobContext[CreateUserSettings]) -> JobResult:
    """Publish ``UserSettingsCreated`` for the user; the saga takes it from there."""
    from services.sagas import SagaMessage

    user_id = ctx.payload.user_id
    receipt = await ctx.sagas.publish(SagaMessage(
        type="UserSettingsCreated", payload={"userId": user_id},
        idempotency_key=f"user-settings-created:{user_id}", traceparent=ctx.traceparent))
    if not receipt.published:
        # A retryable rejection (the sagas API is away, 5xx, 429) fails the attempt and
        # the retry policy takes over; anything else will not get better by retrying.
        return create_failure_result(f"UserSettingsCreated not published: {receipt.reason}",
                                     retryable=receipt.retryable)
    return create_success_result({"userId": user_id, "settingsCreated": True,
                                  "sagaPosition": receipt.position})


class GenerateReport(BaseModel):
    """Payload of ``generate-report``."""

    report: str = Field(min_length=1)
    steps: int = Field(default=5, ge=1, le=1000)
    step_seconds: float = Field(default=0.2, ge=0, le=60)


@define_job_handler
async def generate_report(ctx: JobContext[GenerateReport]) -> JobResult:
    """Work in steps, heartbeating the fraction done after each."""
    for step in range(1, ctx.payload.steps + 1):
        await asyncio.sleep(ctx.payload.step_seconds)
        await ctx.heartbeat(progress=step / ctx.payload.steps)
    return create_success_result({"report": ctx.payload.report, "steps": ctx.payload.steps})


class SendNotification(BaseModel):
    """Payload of ``send-notification``."""

    to: str = Field(min_length=1)
    text: str = ""


@define_job_handler
async def send_notification(ctx: JobContext[SendNotification]) -> JobResult:
    """A quick urgent job."""
    return create_success_result({"to": ctx.payload.to, "delivered": True})


create_user_settings_job = define_job(
    "create-user-settings", create_user_settings, payload=CreateUserSettings,
    retry=RetryPolicy(max_attempts=5, backoff=1.0), timeout=30,
    description="Create a user's settings and tell the user-settings-saga")
generate_report_job = define_job(
    "generate-report", generate_report, payload=GenerateReport, timeout=600,
    stuck_after=60, description="A long job that reports its progress")
send_notification_job = define_job(
    "send-notification", send_notification, payload=SendNotification, lane="urgent",
    timeout=10, description="A short job on the urgent lane")

EXAMPLES: tuple[JobDefinition[Any], ...] = (
    create_user_settings_job, generate_report_job, send_notification_job)


def seed_requests(count: int = 3, *, tag: str = "demo"
                  ) -> list[tuple[JobDefinition[Any], dict[str, Any]]]:
    """The demo data ``POST /seed`` triggers: ``count`` of each example job, for users named
    ``<tag>-user-<n>`` (a new tag per seeding gives new users, hence new saga instances)."""
    out: list[tuple[JobDefinition[Any], dict[str, Any]]] = []
    for i in range(1, count + 1):
        user = f"{tag}-user-{i}"
        out.append((create_user_settings_job, {"userId": user}))
        out.append((generate_report_job, {"report": f"{tag}-report-{i}", "steps": 5}))
        out.append((send_notification_job, {"to": user, "text": "welcome"}))
    return out

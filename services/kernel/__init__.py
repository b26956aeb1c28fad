"""The gateway kernel: what every NetScript service is built from.

- :class:`Settings` — the environment the topology injects, read once (``Settings.from_env``);
- Kafka: :func:`create_producer`, :func:`create_consumer`, :class:`Publisher` (traced,
  ``traceparent`` in record headers), the dead-letter path (:func:`send_to_dead_letter`);
- HTTP: :func:`create_app` (health, problem+json, OpenAPI, tracing), :class:`ProblemError`,
  server-sent events (:func:`sse_response`);
- tracing: :func:`configure_tracing`, :func:`inject_trace_headers`, :func:`consume_span`.
"""

from services.kernel._app import ReadinessCheck, create_app, kafka_ready
from services.kernel._consumer import Delivery, RecordConsumer, RetryPolicy
from services.kernel._dead_letter import (
    dead_letter_headers,
    dead_letter_topic,
    send_to_dead_letter,
)
from services.kernel._errors import KernelError, ProblemError, ServiceNotConfiguredError
from services.kernel._kafka import (
    Published,
    Publisher,
    PublishError,
    create_consumer,
    create_producer,
)
from services.kernel._problems import (
    PROBLEM_JSON,
    Problem,
    field_errors,
    problem_response,
    problem_responses,
)
from services.kernel._settings import Settings
from services.kernel._sse import ServerSentEvent, json_event, last_event_id, sse_response
from services.kernel._topics import TopicConfig, ensure_topics, partition_counts
from services.kernel._tracing import (
    configure_tracing,
    consume_span,
    extract_trace_context,
    inject_trace_headers,
    publish_span,
    traceparent_of,
    tracer,
)

__all__ = [
    "PROBLEM_JSON",
    "Delivery",
    "KernelError",
    "Problem",
    "ProblemError",
    "PublishError",
    "Published",
    "Publisher",
    "ReadinessCheck",
    "RecordConsumer",
    "RetryPolicy",
    "ServerSentEvent",
    "ServiceNotConfiguredError",
    "Settings",
    "TopicConfig",
    "configure_tracing",
    "consume_span",
    "create_app",
    "create_consumer",
    "create_producer",
    "dead_letter_headers",
    "dead_letter_topic",
    "ensure_topics",
    "extract_trace_context",
    "field_errors",
    "inject_trace_headers",
    "json_event",
    "kafka_ready",
    "last_event_id",
    "partition_counts",
    "problem_response",
    "problem_responses",
    "publish_span",
    "send_to_dead_letter",
    "sse_response",
    "traceparent_of",
    "tracer",
]

"""OpenTelemetry for every NetScript process, and W3C trace context in Kafka record headers.

``configure_tracing`` installs a tracer provider named after the service, exporting over OTLP/HTTP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the topology points it at the Aspire dashboard).
``inject_trace_headers`` / ``extract_trace_context`` carry ``traceparent`` (and ``tracestate``)
from a producer's span to the consumer's, so one trace spans the whole flow across topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.kernel._settings import Settings

Headers = Sequence[tuple[str, bytes]]

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Install (once per process) the tracer provider for ``settings.service_name``.

    Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` nothing would ever read the spans, so the API's
    no-op provider stays: spans cost nothing, while ``traceparent`` headers a request or record
    brings in are still passed on. Returns the SDK provider when one is installed.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    if not settings.otlp_endpoint:
        return None
    # Imported here: the exporter pulls in protobuf, which processes without OTLP never need.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    """NetScript's tracer (from whatever provider is installed)."""
    return trace.get_tracer("netscript")


def inject_trace_headers(headers: Iterable[tuple[str, bytes]] = ()) -> list[tuple[str, bytes]]:
    """``headers`` plus the current span's ``traceparent``/``tracestate`` (replacing old ones)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    out = [(k, v) for k, v in headers if k not in _TRACE_KEYS or k not in carrier]
    out.extend((k, v.encode()) for k, v in carrier.items())
    return out


def extract_trace_context(headers: Iterable[tuple[str, bytes]] | None) -> otel_context.Context:
    """The trace context a record's headers carry (an empty context when they carry none)."""
    carrier = {
        k: v.decode("latin-1") for k, v in (headers or ()) if k in _TRACE_KEYS and v is not None
    }
    return _PROPAGATOR.extract(carrier)


def traceparent_of(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The raw ``traceparent`` header value, if the record has one."""
    for key, value in headers or ():
        if key == "traceparent" and value is not None:
            return value.decode("latin-1")
    return None


@contextmanager
def publish_span(topic: str, *, key: bytes | None = None) -> Iterator[Span]:
    """A PRODUCER span around writing one record (or batch) to ``topic``."""
    attributes: dict[str, str] = {"messaging.system": "kafka",
                                  "messaging.destination.name": topic,
                                  "messaging.operation.type": "send"}
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
    with tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER,
                                        attributes=attributes) as span:
        yield span


@contextmanager
def consume_span(
    topic: str, partition: int, offset: int, headers: Iterable[tuple[str, bytes]] | None
) -> Iterator[Span]:
    """A CONSUMER span for processing one record, child of the producer's trace."""
    parent = extract_trace_context(headers)
    with tracer().start_as_current_span(
        f"process {topic}", context=parent, kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic,
                    "messaging.destination.partition.id": str(partition),
                    "messaging.kafka.offset": offset, "messaging.operation.type": "process"},
    ) as span:
        yield span

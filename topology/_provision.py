"""``netscript init``: create the topics and register the schemas the plugins declare.

Idempotent: a topic that exists is left as it is, and registering a schema a subject already
has returns the id it has. Run as the one-shot ``init`` resource of the graph, before every
process that uses those topics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from topology._errors import ProvisionError
from topology._model import SchemaSubject, TopicSpec


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicResult:
    """What happened to one declared topic."""

    name: str
    created: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class SchemaResult:
    """The id a declared subject's schema has in the registry."""

    subject: str
    schema_id: int


async def create_topics(
    bootstrap_servers: str, topics: Sequence[TopicSpec], *, replication_factor: int = 1
) -> list[TopicResult]:
    """Create each of ``topics`` that does not exist yet.

    Raises :class:`ProvisionError` when the log cannot be reached or refuses a topic.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError
    from aiokafka.errors import for_code as error_for_code

    if not topics:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    try:
        await admin.start()
    except KafkaError as exc:
        raise ProvisionError(item=f"topics on the log at {bootstrap_servers}",
                             problem=f"the log does not answer ({exc}); start it or set "
                                     "KAFKA_BOOTSTRAP_SERVERS") from exc
    results: list[TopicResult] = []
    try:
        for topic in topics:
            request = NewTopic(topic.name, num_partitions=topic.partitions,
                               replication_factor=replication_factor,
                               topic_configs=topic.topic_configs())
            try:
                response = await admin.create_topics([request])
            except KafkaError as exc:
                raise ProvisionError(item=f"topic {topic.name!r}", problem=str(exc)) from exc
            for _name, code, *rest in response.topic_errors:
                error = error_for_code(code)
                if code and error is not TopicAlreadyExistsError:
                    message = rest[0] if rest and rest[0] else error.__name__
                    raise ProvisionError(item=f"topic {topic.name!r}",
                                         problem=f"the log refused it: {message}")
                results.append(TopicResult(name=topic.name, created=not code))
    finally:
        await admin.close()
    return results


def schema_roots(app_root: Path) -> tuple[Path, ...]:
    """Where a declared schema path is looked up: the app's folder, then NetScript's own
    checkout (whose ``schemas/`` holds the built-in plugins' schemas)."""
    import services

    return (app_root, Path(services.__file__).resolve().parents[1])


async def register_schemas(
    registry_url: str, subjects: Sequence[SchemaSubject], *, roots: Sequence[Path]
) -> list[SchemaResult]:
    """Register each subject's schema, read from the first of ``roots`` that has it.

    Raises :class:`ProvisionError` for a missing schema file or a registry refusal.
    """
    from services.registry import RegistryClient, RegistryError

    results: list[SchemaResult] = []
    if not subjects:
        return results
    async with RegistryClient(registry_url) as client:
        for subject in subjects:
            candidates = [root / subject.schema for root in roots]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise ProvisionError(
                    item=f"subject {subject.subject!r}",
                    problem=f"{subject.schema} is in none of {', '.join(map(str, roots))}; the "
                            f"plugin {subject.plugin!r} declares it: run from the app's folder "
                            f"or pass --app")
            schema = path.read_text()
            try:
                schema_id = await client.register(subject.subject, schema)
            except RegistryError as exc:
                raise ProvisionError(item=f"subject {subject.subject!r}",
                                     problem=f"the registry at {registry_url} refused it: "
                                             f"{exc}") from exc
            results.append(SchemaResult(subject=subject.subject, schema_id=schema_id))
    return results

"""``netscript publish`` and ``netscript tail``: Avro records on a topic, from a terminal.

``publish`` encodes a JSON value with its subject's latest schema (Confluent's wire format), so
a value that does not fit is refused with the field named before anything reaches the log.
``tail`` prints records one JSON object per line, decoding framed Avro through the registry and
showing other values as JSON or text.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sys
from typing import Annotated, Any

import typer

RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", help="Schema registry URL (default: SCHEMA_REGISTRY_URL, else "
                                    "http://127.0.0.1:8081)."),
]
BootstrapOption = Annotated[
    str | None,
    typer.Option("--bootstrap-servers", "-b",
                 help="The log (default: KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)."),
]


def register_topic_commands(app: typer.Typer) -> None:
    """Add ``publish`` and ``tail`` to the ``netscript`` command line."""
    app.command("publish")(publish)
    app.command("tail")(tail)


def _settings(bootstrap_servers: str | None) -> Any:
    from services.kernel import Settings

    settings = Settings.from_env("netscript-cli")
    if bootstrap_servers:
        settings = dataclasses.replace(settings, kafka_bootstrap_servers=bootstrap_servers)
    return settings


def _registry_url(option: str | None, settings: Any) -> str:
    from services.registry import DEFAULT_URL

    return option or settings.schema_registry_url or DEFAULT_URL


def publish(
    topic: Annotated[str, typer.Argument(help="Topic to write to.")],
    value: Annotated[str, typer.Option("--value", help="The value, as JSON.")],
    key: Annotated[str | None, typer.Option("--key", help="The record key (text).")] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="Subject whose latest schema encodes the value (default: TOPIC-value)."),
    ] = None,
    registry: RegistryOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Encode VALUE with the subject's latest Avro schema and append it (acks=all)."""
    from services.kernel import KernelError, Publisher
    from services.registry import AvroCodec, RegistryClient, RegistryError, unframe

    try:
        document = json.loads(value)
    except ValueError as exc:
        typer.echo(f"error: --value is not JSON ({exc}); quote it for the shell, e.g. "
                   "--value '{\"id\": 1}'", err=True)
        raise typer.Exit(2) from None
    settings = _settings(bootstrap_servers)
    subject = subject or f"{topic}-value"
    url = _registry_url(registry, settings)

    async def main() -> str:
        async with RegistryClient(url) as client:
            data = await AvroCodec(client).encode(subject, document)
        async with Publisher(settings) as publisher:
            stored = await publisher.publish(
                topic, data, key=None if key is None else key.encode())
        return (f"published to {stored.topic} partition={stored.partition} "
                f"offset={stored.offset} (subject {subject}, schema id {unframe(data)[0]})")

    try:
        typer.echo(asyncio.run(main()))
    except (RegistryError, KernelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def tail(
    topic: Annotated[str, typer.Argument(help="Topic to read.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record, not the end.")
    ] = False,
    max_records: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many records.")
    ] = None,
    exit_at_end: Annotated[
        bool, typer.Option("--exit-at-end", "-e", help="Stop at the current end of the log.")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print values as stored, without decoding Avro.")
    ] = False,
    registry: RegistryOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Print TOPIC's records as JSON lines: partition, offset, key, value (Avro decoded)."""
    from services.kernel import create_consumer
    from services.registry import AvroCodec, RegistryClient
    from topology._signals import run_until_signalled

    settings = _settings(bootstrap_servers)
    url = _registry_url(registry, settings)
    failed = False

    async def main(stop: asyncio.Event) -> None:
        nonlocal failed
        from aiokafka.errors import KafkaError
        from aiokafka.structs import TopicPartition

        consumer = create_consumer(
            settings, topic, group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest")
        async with RegistryClient(url) as client:
            codec = AvroCodec(client)
            try:
                await consumer.start()
                partitions = sorted(consumer.partitions_for_topic(topic) or ())
                assigned = [TopicPartition(topic, p) for p in partitions]
                consumer.unsubscribe()
                consumer.assign(assigned)
                if from_beginning:
                    await consumer.seek_to_beginning(*assigned)
                else:
                    await consumer.seek_to_end(*assigned)
                ends = await consumer.end_offsets(assigned)
                printed = 0
                while not stop.is_set():
                    if exit_at_end and all(
                        [await consumer.position(tp) >= ends[tp] for tp in assigned]
                    ):
                        return
                    batches = await consumer.getmany(timeout_ms=200)
                    for tp in sorted(batches, key=lambda item: item.partition):
                        for message in batches[tp]:
                            line = await _render(message, codec, raw)
                            sys.stdout.write(line + "\n")
                            sys.stdout.flush()
                            printed += 1
                            if max_records is not None and printed >= max_records:
                                return
            except KafkaError as exc:
                typer.echo(f"error: cannot read {topic!r} from the log at "
                           f"{settings.kafka_bootstrap_servers} ({exc}); check that it is up "
                           "and KAFKA_BOOTSTRAP_SERVERS / --bootstrap-servers point at it",
                           err=True)
                failed = True
            finally:
                await consumer.stop()

    run_until_signalled(main)
    if failed:
        raise typer.Exit(1)


async def _render(message: Any, codec: Any, raw: bool) -> str:
    from services.registry import RegistryError, is_framed, unframe

    line: dict[str, Any] = {"partition": message.partition, "offset": message.offset,
                            "key": _plain(message.key, raw=True), "value": None}
    data = message.value
    if data is not None and not raw and is_framed(data):
        try:
            line["value"] = await codec.decode(data)
            line["schema_id"] = unframe(data)[0]
        except RegistryError as exc:
            line["value"] = _plain(data, raw=True)
            line["error"] = str(exc)
    else:
        line["value"] = _plain(data, raw=raw)
    line["timestamp"] = message.timestamp
    return json.dumps(line, default=_jsonable, ensure_ascii=False)


def _plain(data: bytes | None, *, raw: bool) -> Any:
    if data is None:
        return None
    text = data.decode("utf-8", "backslashreplace")
    if raw:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return str(value)

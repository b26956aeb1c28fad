"""The embedded log: a single-node, durable, Kafka-compatible broker.

Real Kafka clients (aiokafka, librdkafka/confluent-kafka, kcat, faust-streaming) use it
unchanged. Start one for the duration of a block::

    async with Broker.serve(port=0, data_dir=tmp_path) as broker:
        ...  # broker.bootstrap_servers is listening

or from the shell: ``netscript log serve --port 9092 --data-dir .data/log``.
"""

from services.log._broker import Broker
from services.log._config import BrokerConfig, TopicConfig
from services.log._errors import (
    BrokerClosedError,
    ErrorCode,
    KafkaError,
    LogError,
    StorageError,
)

__all__ = [
    "Broker",
    "BrokerClosedError",
    "BrokerConfig",
    "ErrorCode",
    "KafkaError",
    "LogError",
    "StorageError",
    "TopicConfig",
]

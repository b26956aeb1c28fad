"""SCRAM credentials through confluent-kafka's AdminClient (KIP-554)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from services.log.testing import BrokerProcess


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker process of its own: credentials are broker-wide, and this one can be killed."""
    with BrokerProcess(tmp_path / "data") as process:
        yield process


def _admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def _upsert(user: str, mechanism: ScramMechanism, iterations: int) -> UserScramCredentialUpsertion:
    return UserScramCredentialUpsertion(
        user, ScramCredentialInfo(mechanism, iterations), b"secret", b"salt"
    )


def _alter(admin: AdminClient, *alterations: object) -> None:
    for future in admin.alter_user_scram_credentials(list(alterations)).values():
        future.result(30)


def _error_code(future: object) -> int:
    with pytest.raises(KafkaException) as failed:
        future.result(30)  # type: ignore[attr-defined]
    code: int = failed.value.args[0].code()
    return code


def _mechanisms(admin: AdminClient, user: str) -> set[tuple[str, int]]:
    described = admin.describe_user_scram_credentials([user])[user].result(30)
    return {(c.mechanism.name, c.iterations) for c in described.scram_credential_infos}


def test_upsert_describe_and_delete_credentials(broker: BrokerProcess) -> None:
    """A user gets two mechanisms, loses one, and is unknown once it has none left."""
    admin = _admin(broker)
    assert _error_code(admin.describe_user_scram_credentials(["alice"])["alice"]) == (
        KafkaError.RESOURCE_NOT_FOUND
    )
    _alter(admin, _upsert("alice", ScramMechanism.SCRAM_SHA_256, 8192))
    _alter(admin, _upsert("alice", ScramMechanism.SCRAM_SHA_512, 4096))
    assert _mechanisms(admin, "alice") == {("SCRAM_SHA_256", 8192), ("SCRAM_SHA_512", 4096)}
    _alter(admin, UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256))
    assert _mechanisms(admin, "alice") == {("SCRAM_SHA_512", 4096)}
    _alter(admin, UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_512))
    assert _error_code(admin.describe_user_scram_credentials(["alice"])["alice"]) == (
        KafkaError.RESOURCE_NOT_FOUND
    )


def test_unacceptable_alterations_are_refused_per_user(broker: BrokerProcess) -> None:
    """Too few iterations, deleting what does not exist, or naming a user twice each fail alone."""
    admin = _admin(broker)
    results = admin.alter_user_scram_credentials(
        [
            _upsert("weak", ScramMechanism.SCRAM_SHA_256, 1000),
            UserScramCredentialDeletion("ghost", ScramMechanism.SCRAM_SHA_256),
            _upsert("ok", ScramMechanism.SCRAM_SHA_256, 4096),
        ]
    )
    assert _error_code(results["weak"]) == KafkaError.UNACCEPTABLE_CREDENTIAL
    assert _error_code(results["ghost"]) == KafkaError.RESOURCE_NOT_FOUND
    results["ok"].result(30)
    twice = admin.alter_user_scram_credentials(
        [
            _upsert("bob", ScramMechanism.SCRAM_SHA_256, 4096),
            _upsert("bob", ScramMechanism.SCRAM_SHA_512, 4096),
        ]
    )
    assert _error_code(twice["bob"]) == KafkaError.DUPLICATE_RESOURCE
    everyone = admin.describe_user_scram_credentials().result(30)
    assert set(everyone) == {"ok"}


def test_credentials_survive_a_broker_crash(broker: BrokerProcess) -> None:
    """Credentials are journaled before AlterUserScramCredentials answers."""
    _alter(_admin(broker), _upsert("kept", ScramMechanism.SCRAM_SHA_512, 10000))
    broker.kill()
    broker.start()
    assert _mechanisms(_admin(broker), "kept") == {("SCRAM_SHA_512", 10000)}

"""ACLs through confluent-kafka's AdminClient: CreateAcls, DescribeAcls, DeleteAcls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from services.log._acls import AclBinding as AclBindingModel
from services.log._acls import AclFilter, PatternType
from services.log.testing import BrokerProcess

ANY_OP, ANY_PERM = AclOperation.ANY, AclPermissionType.ANY


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker process of its own: ACLs are broker-wide, and this one can be killed."""
    with BrokerProcess(tmp_path / "data") as process:
        yield process


def _admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def _binding(
    name: str,
    principal: str,
    operation: AclOperation = AclOperation.READ,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
    kind: ResourceType = ResourceType.TOPIC,
) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)


def _create(admin: AdminClient, *bindings: AclBinding) -> None:
    for future in admin.create_acls(list(bindings)).values():
        future.result(30)


def _describe(admin: AdminClient, acl_filter: AclBindingFilter) -> set[tuple[str, str, str]]:
    found = admin.describe_acls(acl_filter).result(30)
    return {(b.name, b.resource_pattern_type.name, b.principal) for b in found}


def test_match_filter_finds_literal_prefixed_and_wildcard_acls(broker: BrokerProcess) -> None:
    """A MATCH filter on a topic name finds its LITERAL, a PREFIXED and the `*` ACL, not others."""
    admin = _admin(broker)
    _create(
        admin,
        _binding("orders", "User:alice"),
        _binding("ord", "User:bob", pattern=ResourcePatternType.PREFIXED),
        _binding("*", "User:carol", AclOperation.DESCRIBE),
        _binding("payments", "User:dave"),
        _binding("orders", "User:erin", kind=ResourceType.GROUP),
    )
    matching = AclBindingFilter(
        ResourceType.TOPIC, "orders", ResourcePatternType.MATCH, None, None, ANY_OP, ANY_PERM
    )
    assert _describe(admin, matching) == {
        ("orders", "LITERAL", "User:alice"),
        ("ord", "PREFIXED", "User:bob"),
        ("*", "LITERAL", "User:carol"),
    }
    literal = AclBindingFilter(
        ResourceType.ANY, "orders", ResourcePatternType.LITERAL, None, None, ANY_OP, ANY_PERM
    )
    assert _describe(admin, literal) == {
        ("orders", "LITERAL", "User:alice"),
        ("orders", "LITERAL", "User:erin"),
    }


def test_delete_returns_and_removes_only_the_matching_acls(broker: BrokerProcess) -> None:
    """DeleteAcls answers each filter with the bindings it removed; the rest stay."""
    admin = _admin(broker)
    _create(
        admin,
        _binding("t1", "User:alice", AclOperation.READ),
        _binding("t1", "User:alice", AclOperation.WRITE),
        _binding("t2", "User:bob"),
    )
    by_alice = AclBindingFilter(
        ResourceType.TOPIC, None, ResourcePatternType.ANY, "User:alice", None, ANY_OP, ANY_PERM
    )
    deleted = admin.delete_acls([by_alice])[by_alice].result(30)
    assert sorted(b.operation.name for b in deleted) == ["READ", "WRITE"]
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, ANY_OP, ANY_PERM
    )
    assert _describe(admin, everything) == {("t2", "LITERAL", "User:bob")}
    assert admin.delete_acls([by_alice])[by_alice].result(30) == []


def test_invalid_bindings_are_refused_with_invalid_request(broker: BrokerProcess) -> None:
    """A CLUSTER ACL not named kafka-cluster, or a principal without a type, is refused."""
    admin = _admin(broker)
    good = _binding("kafka-cluster", "User:ops", AclOperation.ALTER, kind=ResourceType.BROKER)
    bad_cluster = _binding("my-cluster", "User:ops", AclOperation.ALTER, kind=ResourceType.BROKER)
    bad_principal = _binding("t", "alice")
    results = admin.create_acls([good, bad_cluster, bad_principal])
    results[good].result(30)
    for binding in (bad_cluster, bad_principal):
        with pytest.raises(KafkaException) as failed:
            results[binding].result(30)
        assert failed.value.args[0].code() == KafkaError.INVALID_REQUEST


def test_acls_survive_a_broker_crash(broker: BrokerProcess) -> None:
    """ACLs are journaled before CreateAcls answers, so kill -9 keeps them."""
    _create(_admin(broker), _binding("kept", "User:alice"))
    broker.kill()
    broker.start()
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, ANY_OP, ANY_PERM
    )
    assert _describe(_admin(broker), everything) == {("kept", "LITERAL", "User:alice")}


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        (PatternType.MATCH, "orders", {"orders/LITERAL", "*/LITERAL", "ord/PREFIXED"}),
        (PatternType.MATCH, "or", {"*/LITERAL"}),
        (PatternType.ANY, "ord", {"ord/PREFIXED", "ord/LITERAL"}),
        (PatternType.PREFIXED, "ord", {"ord/PREFIXED"}),
        (PatternType.LITERAL, "*", {"*/LITERAL"}),
        (PatternType.ANY, None, {"orders/LITERAL", "*/LITERAL", "ord/PREFIXED", "ord/LITERAL"}),
    ],
)
def test_filter_patterns_follow_kafka(
    pattern: PatternType, name: str | None, expected: set[str]
) -> None:
    """MATCH finds the bindings that apply to a name; ANY and exact types compare names."""
    bindings = [
        AclBindingModel(2, "orders", PatternType.LITERAL, "User:a", "*", 3, 3),
        AclBindingModel(2, "*", PatternType.LITERAL, "User:a", "*", 3, 3),
        AclBindingModel(2, "ord", PatternType.PREFIXED, "User:a", "*", 3, 3),
        AclBindingModel(2, "ord", PatternType.LITERAL, "User:a", "*", 3, 3),
    ]
    acl_filter = AclFilter(2, name, pattern, None, None, 1, 1)
    found = {
        f"{b.resource_name}/{PatternType(b.pattern_type).name}"
        for b in bindings
        if acl_filter.matches(b)
    }
    assert found == expected

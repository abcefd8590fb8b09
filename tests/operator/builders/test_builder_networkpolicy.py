"""The NetworkPolicy builder and `spec.networkPolicy` parsing, compared as plain dicts and checked
against the Kubernetes schema."""

from __future__ import annotations

from typing import Any

import pytest
from builder_specs import ALL_APIS, make, sample
from schema_validation import validate_manifest
from stt_operator.builders import build_children, build_networkpolicy
from stt_operator.spec import SpecError

SELECTOR = {"app.kubernetes.io/name": "stt-server", "app.kubernetes.io/instance": "s1"}


def _ns(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def test_disabled_by_default_builds_nothing() -> None:
    assert build_networkpolicy(make(), operator_namespace="stt-system") is None
    assert build_networkpolicy(make(networkPolicy={"enabled": False, "grpcFrom": [_ns("a")]}),
                               operator_namespace="stt-system") is None
    kinds = [c["kind"] for c in build_children(make(), monitoring_apis=ALL_APIS, operator_namespace="stt-system")]
    assert "NetworkPolicy" not in kinds


def test_defaults_admit_every_client_to_grpc_and_operator_and_prometheus_to_http() -> None:
    policy = build_networkpolicy(make(networkPolicy={"enabled": True}), operator_namespace="stt-system")
    assert policy is not None
    assert (policy["apiVersion"], policy["kind"], policy["metadata"]["name"]) == \
        ("networking.k8s.io/v1", "NetworkPolicy", "s1")
    assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stt-operator"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": SELECTOR}, "policyTypes": ["Ingress"],
        "ingress": [
            {"ports": [{"protocol": "TCP", "port": 50051}]},  # no `from`: everyone
            {"from": [_ns("stt-system"), _ns("monitoring")], "ports": [{"protocol": "TCP", "port": 8000}]},
            {"ports": [{"protocol": "TCP", "port": 8080}]},  # the REST API: everyone, as gRPC
        ]}
    validate_manifest(policy)


def test_peers_ports_and_overrides_follow_the_spec() -> None:
    spec = make(service={"grpcPort": 9000, "httpPort": 9001, "restPort": 9002}, networkPolicy={
        "enabled": True,
        "grpcFrom": [{"namespaceSelector": {"matchLabels": {"team": "voice"}}, "podSelector": {}},
                     {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
        "httpFrom": [{"ipBlock": {"cidr": "172.16.0.10/32"}}],
        "restFrom": [{"podSelector": {"matchLabels": {"app": "web"}}}],
        "operatorNamespace": "ops",
        "prometheusNamespaceSelector": {"matchExpressions": [{"key": "prometheus", "operator": "Exists"}]},
    })
    policy = build_networkpolicy(spec, operator_namespace="stt-system")
    assert policy is not None
    grpc, http, rest = policy["spec"]["ingress"]
    assert rest == {"ports": [{"protocol": "TCP", "port": 9002}], "from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    assert grpc == {"ports": [{"protocol": "TCP", "port": 9000}], "from": [
        {"namespaceSelector": {"matchLabels": {"team": "voice"}}, "podSelector": {}},
        {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]}
    assert http == {"ports": [{"protocol": "TCP", "port": 9001}], "from": [
        _ns("ops"),  # the spec's operatorNamespace wins over where the operator runs
        {"namespaceSelector": {"matchExpressions": [{"key": "prometheus", "operator": "Exists"}]}},
        {"ipBlock": {"cidr": "172.16.0.10/32"}}]}
    validate_manifest(policy)


def test_an_operator_that_does_not_know_its_namespace_leaves_it_out() -> None:
    policy = build_networkpolicy(make(networkPolicy={"enabled": True}), operator_namespace=None)
    assert policy is not None
    assert policy["spec"]["ingress"][1]["from"] == [_ns("monitoring")]


def test_children_include_the_policy_when_enabled() -> None:
    children = build_children(sample("network-policy.yaml"), monitoring_apis=frozenset(), operator_namespace="ops")
    policy = next(c for c in children if c["kind"] == "NetworkPolicy")
    assert policy["spec"]["ingress"][1]["from"][0] == _ns("ops")
    for child in children:
        validate_manifest(child)


@pytest.mark.parametrize(("policy", "where"), [
    ({"enabled": "yes"}, "spec.networkPolicy.enabled"),
    ({"grpcFrom": []}, "spec.networkPolicy.grpcFrom"),
    ({"grpcFrom": [{}]}, "spec.networkPolicy.grpcFrom[0]"),
    ({"grpcFrom": [{"namespaceSelctor": {}}]}, "spec.networkPolicy.grpcFrom[0]"),
    ({"grpcFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}, "spec.networkPolicy.grpcFrom[0]"),
    ({"grpcFrom": [{"ipBlock": {"cidr": "10.0.0.0"}}]}, "spec.networkPolicy.grpcFrom[0].ipBlock.cidr"),
    ({"httpFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]},
     "spec.networkPolicy.httpFrom[0].ipBlock.except[0]"),
    ({"httpFrom": [{"podSelector": {"matchLabels": {"a": 1}}}]}, "spec.networkPolicy.httpFrom[0].podSelector.matchLabels"),
    ({"prometheusNamespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}},
     "spec.networkPolicy.prometheusNamespaceSelector.matchExpressions[0].values"),
    ({"prometheusNamespaceSelector": {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]}},
     "spec.networkPolicy.prometheusNamespaceSelector.matchExpressions[0].values"),
    ({"prometheusNamespaceSelector": {"matchExpressions": [{"key": "k", "operator": "Has"}]}},
     "spec.networkPolicy.prometheusNamespaceSelector.matchExpressions[0].operator"),
    ({"operatorNamespace": "Stt_System"}, "spec.networkPolicy.operatorNamespace"),
])
def test_bad_policies_name_the_field(policy: dict[str, Any], where: str) -> None:
    with pytest.raises(SpecError) as caught:
        make(networkPolicy={"enabled": True, **policy})
    assert caught.value.field == where

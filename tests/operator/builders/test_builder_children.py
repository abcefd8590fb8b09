"""build_children: which children appear when, common labels, no owner references, schema-valid."""

from __future__ import annotations

import pytest
from builder_specs import ALL_APIS, make, sample
from schema_validation import SchemaViolation, validate_manifest
from stt_operator.builders import build_children

LABELS = {"app.kubernetes.io/name": "stt-server", "app.kubernetes.io/instance": "s1",
          "app.kubernetes.io/managed-by": "stt-operator"}


def kinds(children: list[dict]) -> list[str]:
    return [c["kind"] for c in children]


def test_minimal_without_monitoring_apis() -> None:
    assert kinds(build_children(make(), monitoring_apis=frozenset())) == ["ConfigMap", "Deployment", "Service"]


def test_monitoring_children_follow_the_apis_the_cluster_serves() -> None:
    spec = make()
    assert kinds(build_children(spec, monitoring_apis=frozenset({"servicemonitors"})))[-1] == "ServiceMonitor"
    assert kinds(build_children(spec, monitoring_apis=frozenset({"prometheusrules"})))[-1] == "PrometheusRule"
    assert kinds(build_children(spec, monitoring_apis=ALL_APIS))[-2:] == ["ServiceMonitor", "PrometheusRule"]


def test_monitoring_children_follow_the_spec_switches() -> None:
    spec = make(monitoring={"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}})
    assert kinds(build_children(spec, monitoring_apis=ALL_APIS)) == ["ConfigMap", "Deployment", "Service"]


def test_pdb_only_when_more_than_one_pod_may_run() -> None:
    assert "PodDisruptionBudget" not in kinds(build_children(make(replicas=1), monitoring_apis=frozenset()))
    assert "PodDisruptionBudget" in kinds(build_children(make(replicas=2), monitoring_apis=frozenset()))
    assert "PodDisruptionBudget" in kinds(build_children(make(), monitoring_apis=frozenset(), replicas=3))
    scaled = make(autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    assert "PodDisruptionBudget" in kinds(build_children(scaled, monitoring_apis=frozenset()))


def test_replicas_override_reaches_the_deployment() -> None:
    deployment = build_children(make(replicas=2), monitoring_apis=frozenset(), replicas=5)[1]
    assert deployment["spec"]["replicas"] == 5


def test_every_child_is_named_labelled_and_unowned() -> None:
    for child in build_children(make(replicas=2), monitoring_apis=ALL_APIS):
        meta = child["metadata"]
        assert (meta["name"], meta["namespace"]) == ("s1", "ns"), child["kind"]
        assert LABELS.items() <= meta["labels"].items(), child["kind"]
        assert "ownerReferences" not in meta


@pytest.mark.parametrize("name", ["minimal-cpu.yaml", "gpu-production.yaml", "demo.yaml"])
def test_every_child_of_every_sample_validates(name: str) -> None:
    children = build_children(sample(name), monitoring_apis=ALL_APIS)
    assert len(children) >= 5
    for child in children:
        validate_manifest(child)


def test_validation_does_catch_a_broken_child() -> None:
    service = build_children(make(), monitoring_apis=frozenset())[2]
    service["spec"]["ports"][0]["port"] = "grpc"
    with pytest.raises(SchemaViolation):
        validate_manifest(service)
    rule = build_children(make(), monitoring_apis=ALL_APIS)[-1]
    rule["spec"]["groups"][0]["rules"][0]["expr"] = {"not": "a string"}
    with pytest.raises(SchemaViolation):
        validate_manifest(rule)

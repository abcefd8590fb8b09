"""Service, ServiceMonitor and PodDisruptionBudget builders, compared as plain dicts."""

from __future__ import annotations

from builder_specs import make, sample
from stt_operator.builders import build_pdb, build_service, build_servicemonitor

SELECTOR = {"app.kubernetes.io/name": "stt-server", "app.kubernetes.io/instance": "s1"}


def test_cluster_ip_service() -> None:
    service = build_service(make())
    assert service["spec"] == {"type": "ClusterIP", "selector": SELECTOR, "ports": [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
        {"name": "rest", "port": 8080, "targetPort": "rest", "protocol": "TCP", "appProtocol": "http"}]}


def test_rest_port_zero_leaves_the_rest_api_off_the_service() -> None:
    service = build_service(make(service={"restPort": 0}))
    assert [p["name"] for p in service["spec"]["ports"]] == ["grpc", "http"]


def test_node_port_service_fixed_and_allocated() -> None:
    fixed = build_service(make(service={"type": "NodePort", "nodePort": 32051, "httpNodePort": 32052,
                                        "restNodePort": 32053, "restPort": 9090}))
    assert [p.get("nodePort") for p in fixed["spec"]["ports"]] == [32051, 32052, 32053]
    assert fixed["spec"]["ports"][2]["port"] == 9090
    allocated = build_service(make(service={"type": "NodePort"}))
    assert allocated["spec"]["type"] == "NodePort"
    assert all("nodePort" not in p for p in allocated["spec"]["ports"])


def test_servicemonitor_plain_and_with_token() -> None:
    plain = build_servicemonitor(make(monitoring={"serviceMonitor": {"labels": {"release": "prom"}}}))
    assert plain["metadata"]["labels"]["release"] == "prom"
    assert plain["spec"] == {"selector": {"matchLabels": SELECTOR}, "namespaceSelector": {"matchNames": ["ns"]},
                             "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s",
                                            "scheme": "http"}]}
    gpu = build_servicemonitor(sample("gpu-production.yaml"))
    endpoint = gpu["spec"]["endpoints"][0]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "stt-control", "key": "token"}}
    assert endpoint["scheme"] == "https" and endpoint["interval"] == "15s"


def test_pdb() -> None:
    assert build_pdb(make())["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}
    assert build_pdb(make())["apiVersion"] == "policy/v1"

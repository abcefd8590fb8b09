"""The Service in front of the server pods: gRPC, HTTP and the REST API, ClusterIP or NodePort."""

from __future__ import annotations

from typing import Any

from stt_operator.builders.labels import metadata, selector_labels
from stt_operator.spec import SttServerSpec


def build_service(spec: SttServerSpec) -> dict[str, Any]:
    """The Service `<name>`; a fixed nodePort only when the spec asks for one."""
    svc = spec.service
    grpc: dict[str, Any] = {"name": "grpc", "port": svc.grpc_port, "targetPort": "grpc", "protocol": "TCP",
                            "appProtocol": "grpc"}
    http: dict[str, Any] = {"name": "http", "port": svc.http_port, "targetPort": "http", "protocol": "TCP",
                            "appProtocol": "http"}
    ports = [grpc, http]
    if svc.rest_port:  # the OpenAI-compatible REST API (0: off)
        ports.append({"name": "rest", "port": svc.rest_port, "targetPort": "rest", "protocol": "TCP",
                      "appProtocol": "http"})
    if svc.type == "NodePort":
        for port, node_port in zip(ports, (svc.node_port, svc.http_node_port, svc.rest_node_port)):
            if node_port is not None:
                port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(spec),
            "spec": {"type": svc.type, "selector": selector_labels(spec), "ports": ports}}

"""The Service in front of the server pods: gRPC and HTTP, ClusterIP or NodePort."""

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
    if svc.type == "NodePort":
        if svc.node_port is not None:
            grpc["nodePort"] = svc.node_port
        if svc.http_node_port is not None:
            http["nodePort"] = svc.http_node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(spec),
            "spec": {"type": svc.type, "selector": selector_labels(spec), "ports": [grpc, http]}}

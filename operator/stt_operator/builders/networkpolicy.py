"""The NetworkPolicy letting clients, the operator and Prometheus reach the server pods.

In a namespace with a default-deny ingress policy the operator's autoscaler could not scrape the
pods' control plane and Prometheus could not read `/metrics`; this policy opens exactly what the
fleet needs: the gRPC and REST ports to clients (`restFrom` narrows the REST one), the HTTP port to
the operator's and Prometheus' namespaces.
Traffic from the node (kubelet probes) is always allowed by NetworkPolicy semantics.
"""

from __future__ import annotations

import copy
from typing import Any

from stt_operator.builders.labels import metadata, selector_labels
from stt_operator.spec import SttServerSpec
from stt_operator.spec_networkpolicy import NAMESPACE_NAME_LABEL


def build_networkpolicy(spec: SttServerSpec, *, operator_namespace: str | None) -> dict[str, Any] | None:
    """The NetworkPolicy `<name>`, or None when `spec.networkPolicy.enabled` is false.

    `operator_namespace` is where the operator runs (None when it does not know, e.g. outside the
    cluster); `spec.networkPolicy.operatorNamespace` overrides it. Without either, only Prometheus
    and `httpFrom` reach the HTTP port.
    """
    policy = spec.network_policy
    if not policy.enabled:
        return None
    grpc: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": spec.service.grpc_port}]}
    if policy.grpc_from is not None:  # no `from`: every source may connect
        grpc["from"] = [copy.deepcopy(dict(p)) for p in policy.grpc_from]
    http_from: list[dict[str, Any]] = []
    namespace = policy.operator_namespace or operator_namespace
    if namespace:
        http_from.append({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}})
    http_from.append({"namespaceSelector": copy.deepcopy(dict(policy.prometheus_namespace_selector))})
    http_from.extend(copy.deepcopy(dict(p)) for p in policy.http_from)
    http = {"from": http_from, "ports": [{"protocol": "TCP", "port": spec.service.http_port}]}
    ingress = [grpc, http]
    if spec.service.rest_port:
        rest: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": spec.service.rest_port}]}
        if policy.rest_from is not None:  # no `from`: every client, like the gRPC port
            rest["from"] = [copy.deepcopy(dict(p)) for p in policy.rest_from]
        ingress.append(rest)
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(spec),
        "spec": {"podSelector": {"matchLabels": selector_labels(spec)}, "policyTypes": ["Ingress"],
                 "ingress": ingress},
    }

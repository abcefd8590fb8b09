"""`spec.networkPolicy`: who may reach the server pods when the operator renders a NetworkPolicy.

Peers (`grpcFrom`, `httpFrom`) are Kubernetes `NetworkPolicyPeer`s, checked here as the API
server would check them, so a bad one becomes a `Degraded` condition naming the field instead
of a NetworkPolicy the API server refuses on every pass.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from stt_operator.spec_reader import Reader, SpecError

# Kubernetes sets this label on every namespace (since 1.22), so it selects one namespace by name.
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
DEFAULT_PROMETHEUS_NAMESPACE: Final = "monitoring"
DEFAULT_PROMETHEUS_SELECTOR: Final[Mapping[str, Any]] = {
    "matchLabels": {NAMESPACE_NAME_LABEL: DEFAULT_PROMETHEUS_NAMESPACE}}
NAMESPACE_PATTERN: Final = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PEER_KEYS: Final = ("namespaceSelector", "podSelector", "ipBlock")
SELECTOR_OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class NetworkPolicySpec:
    """Ingress to the server pods: clients to gRPC, the operator and Prometheus to HTTP.

    `grpc_from` None means every client may reach the gRPC port. `operator_namespace` None means
    the namespace the operator itself runs in (the builder is told it).
    """

    enabled: bool = False
    grpc_from: tuple[Mapping[str, Any], ...] | None = None
    http_from: tuple[Mapping[str, Any], ...] = ()
    rest_from: tuple[Mapping[str, Any], ...] | None = None  # None: every client, as grpc_from
    operator_namespace: str | None = None
    prometheus_namespace_selector: Mapping[str, Any] = field(
        default_factory=lambda: {"matchLabels": dict(DEFAULT_PROMETHEUS_SELECTOR["matchLabels"])})


def parse_network_policy(r: Reader) -> NetworkPolicySpec:
    grpc_from = _peers(r, "grpcFrom") if r.has("grpcFrom") else None
    if grpc_from is not None and not grpc_from:
        raise SpecError(f"{r.path}.grpcFrom", "must list at least one peer; leave it out to let every client in")
    rest_from = _peers(r, "restFrom") if r.has("restFrom") else None
    if rest_from is not None and not rest_from:
        raise SpecError(f"{r.path}.restFrom", "must list at least one peer; leave it out to let every client in")
    operator_namespace = r.optional_string("operatorNamespace")
    if operator_namespace is not None and (len(operator_namespace) > 63
                                           or not re.fullmatch(NAMESPACE_PATTERN, operator_namespace)):
        raise SpecError(f"{r.path}.operatorNamespace", f"must be a namespace name, got {operator_namespace!r}")
    prometheus = (label_selector(r.child("prometheusNamespaceSelector"))
                  if r.has("prometheusNamespaceSelector") else NetworkPolicySpec().prometheus_namespace_selector)
    return NetworkPolicySpec(enabled=r.boolean("enabled", False), grpc_from=grpc_from,
                             http_from=_peers(r, "httpFrom"), rest_from=rest_from,
                             operator_namespace=operator_namespace,
                             prometheus_namespace_selector=prometheus)


def _peers(r: Reader, key: str) -> tuple[Mapping[str, Any], ...]:
    return tuple(peer(Reader(item, f"{r.path}.{key}[{i}]")) for i, item in enumerate(r.list(key)))


def peer(r: Reader) -> dict[str, Any]:
    """One NetworkPolicyPeer, normalised: selectors and/or an ipBlock, as Kubernetes allows them."""
    unknown = sorted(set(r.data) - set(PEER_KEYS))
    if unknown:
        raise SpecError(r.path, f"unknown keys {unknown}; a peer has {', '.join(PEER_KEYS)}")
    if not any(r.has(k) for k in PEER_KEYS):
        raise SpecError(r.path, "set namespaceSelector, podSelector or ipBlock")
    if r.has("ipBlock") and (r.has("namespaceSelector") or r.has("podSelector")):
        raise SpecError(r.path, "ipBlock cannot be combined with namespaceSelector or podSelector")
    out: dict[str, Any] = {}
    for key in ("namespaceSelector", "podSelector"):
        if r.has(key):
            out[key] = label_selector(r.child(key))
    if r.has("ipBlock"):
        out["ipBlock"] = _ip_block(r.child("ipBlock"))
    return out


def label_selector(r: Reader) -> dict[str, Any]:
    """A metav1 LabelSelector (`{}` selects everything)."""
    unknown = sorted(set(r.data) - {"matchLabels", "matchExpressions"})
    if unknown:
        raise SpecError(r.path, f"unknown keys {unknown}; a label selector has matchLabels and matchExpressions")
    out: dict[str, Any] = {}
    labels = r.mapping("matchLabels")
    bad = [k for k, v in labels.items() if not isinstance(v, str)]
    if bad:
        raise SpecError(f"{r.path}.matchLabels", f"label values must be strings: {bad}")
    if labels:
        out["matchLabels"] = dict(labels)
    expressions = []
    for i, item in enumerate(r.list("matchExpressions")):
        e = Reader(item, f"{r.path}.matchExpressions[{i}]")
        operator = e.enum("operator", "", SELECTOR_OPERATORS)
        values = e.list("values")
        if operator in ("In", "NotIn") and not values:
            raise SpecError(f"{e.path}.values", f"must not be empty with operator {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise SpecError(f"{e.path}.values", f"must be empty with operator {operator}")
        if not all(isinstance(v, str) for v in values):
            raise SpecError(f"{e.path}.values", "must be strings")
        expression: dict[str, Any] = {"key": e.string("key", required=True), "operator": operator}
        if values:
            expression["values"] = list(values)
        expressions.append(expression)
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _ip_block(r: Reader) -> dict[str, Any]:
    cidr = r.string("cidr", required=True)
    network = _network(cidr, f"{r.path}.cidr")
    excepts = r.list("except")
    for i, item in enumerate(excepts):
        inner = _network(item, f"{r.path}.except[{i}]")
        if inner.version != network.version or not inner.subnet_of(network):  # type: ignore[arg-type]
            raise SpecError(f"{r.path}.except[{i}]", f"must lie inside {cidr}")
    return {"cidr": cidr, **({"except": list(excepts)} if excepts else {})}


def _network(value: Any, path: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError(value)
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise SpecError(path, f"must be a CIDR such as 10.0.0.0/8, got {value!r}") from None

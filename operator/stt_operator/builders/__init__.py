"""Pure builders: SttServerSpec -> the Kubernetes objects the operator keeps in sync."""

from __future__ import annotations

from typing import Any

from stt_operator.builders.alertmanagerconfig import build_alertmanagerconfig
from stt_operator.builders.configmap import build_configmap
from stt_operator.builders.deployment import build_deployment
from stt_operator.builders.grafana_dashboard import build_grafana_dashboard
from stt_operator.builders.networkpolicy import build_networkpolicy
from stt_operator.builders.pdb import build_pdb
from stt_operator.builders.prometheusrule import build_prometheusrule
from stt_operator.builders.service import build_service
from stt_operator.builders.servicemonitor import build_servicemonitor
from stt_operator.spec import SttServerSpec

__all__ = ["build_alertmanagerconfig", "build_children", "build_configmap", "build_deployment",
           "build_grafana_dashboard", "build_networkpolicy", "build_pdb", "build_prometheusrule", "build_service",
           "build_servicemonitor"]


def build_children(spec: SttServerSpec, *, monitoring_apis: frozenset[str],
                   replicas: int | None = None, operator_namespace: str | None = None) -> list[dict[str, Any]]:
    """Every child of one SttServer, without owner references (the handler adopts them).

    `monitoring_apis` names the prometheus-operator kinds the cluster serves; a monitoring child
    is built only when its kind exists and the spec enables it. `replicas` overrides
    `spec.replicas` (the autoscaler's count); the PDB appears when more than one pod may run.
    `operator_namespace` (where the operator runs) lets the NetworkPolicy admit its scrapes.
    """
    count = spec.replicas if replicas is None else replicas
    children = [build_configmap(spec), build_deployment(spec, replicas=count), build_service(spec)]
    most = spec.autoscaling.max_replicas if spec.autoscaling.enabled else count
    if most > 1:
        children.append(build_pdb(spec))
    if spec.monitoring.service_monitor and "servicemonitors" in monitoring_apis:
        children.append(build_servicemonitor(spec))
    if spec.monitoring.prometheus_rule and "prometheusrules" in monitoring_apis:
        children.append(build_prometheusrule(spec))
    if spec.monitoring.alertmanager_config.enabled and "alertmanagerconfigs" in monitoring_apis:
        children.append(build_alertmanagerconfig(spec))
    if spec.monitoring.grafana_dashboard.enabled:
        # A plain ConfigMap: Grafana's sidecar needs no API of its own in the cluster.
        children.append(build_grafana_dashboard(spec))
    policy = build_networkpolicy(spec, operator_namespace=operator_namespace)
    if policy is not None:
        children.append(policy)
    return children

"""Fleet row: replicas wanted and ready, the autoscaler's input and decisions, each pod side by side.

Replica counts come from kube-state-metrics (`kube_deployment_*`), the autoscaler's desired count
from kube-state-metrics' custom-resource metrics over `SttServer.status.autoscaling`
(`KUBE_STATE_METRICS_CONFIG`, docs/dashboards.md). The rest are the pods' own series.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.crd import GROUP, KIND, VERSION
from stt_operator.dashboards.panels import KUBE_SEL, SEL, Query, series
from stt_operator.spec_sections import Thresholds

AUTOSCALER_DESIRED: Final = "sttfleet_sttserver_autoscaling_desired_replicas"
# kube-state-metrics --custom-resource-state-config: exports status.autoscaling.desiredReplicas.
KUBE_STATE_METRICS_CONFIG: Final = {
    "kind": "CustomResourceStateMetrics",
    "spec": {"resources": [{
        "groupVersionKind": {"group": GROUP, "version": VERSION, "kind": KIND},
        "metricNamePrefix": "sttfleet_sttserver",
        "labelsFromPath": {"namespace": ["metadata", "namespace"], "sttserver": ["metadata", "name"]},
        "metrics": [{
            "name": "autoscaling_desired_replicas",
            "help": "Replicas the stt-operator autoscaler last asked for",
            "each": {"type": "Gauge", "gauge": {"path": ["status", "autoscaling", "desiredReplicas"]}},
        }],
    }]},
}


def panels(_: Thresholds) -> list[Builder[Panel]]:
    return [
        series("Replicas", [
            Query(f"sum(kube_deployment_spec_replicas{{{KUBE_SEL}}})", "desired (Deployment)"),
            Query(f"sum(kube_deployment_status_replicas_ready{{{KUBE_SEL}}})", "ready (Deployment)"),
            Query(f"count(stt_ready{{{SEL}}} == 1)", "ready (scraped)"),
        ], unit="short", description="Deployment replicas (kube-state-metrics) and pods that report ready"),
        series("Autoscaler decisions", [
            Query(f'max({AUTOSCALER_DESIRED}{{namespace="$namespace", sttserver="$sttserver"}})', "desired"),
            Query(f"sum(changes(kube_deployment_spec_replicas{{{KUBE_SEL}}}[5m]))", "scale events / 5m"),
        ], unit="short", description="status.autoscaling.desiredReplicas (kube-state-metrics custom resource "
                                     "state) and how often the Deployment was resized"),
        series("Autoscaler input", [
            Query(f"sum(stt_decode_pending{{{SEL}}}) / count(stt_ready{{{SEL}}} == 1)", "decodes per ready pod"),
        ], unit="short", description="Queued + running decodes per ready pod: what the autoscaler compares "
                                     "with targetDecodePendingPerReplica"),
        series("Scrape health per pod", [
            Query(f"up{{{SEL}}}", "{{pod}}"),
        ], unit="short", description="1 while Prometheus scrapes the pod's /metrics"),
        series("Decode queue per pod", [
            Query(f"sum by (pod) (stt_decode_pending{{{SEL}}})", "{{pod}}"),
        ], unit="short", description="Queue depth per pod: an uneven spread means sticky connections"),
        series("Container restarts", [
            Query('sum by (pod) (increase(kube_pod_container_status_restarts_total{namespace="$namespace", '
                  'pod=~"$sttserver-.*", pod=~"$pod"}[1h]))', "{{pod}}"),
        ], unit="short", description="Restarts per pod in the last hour (kube-state-metrics)"),
    ]

"""The ConfigMap that carries this SttServer's Grafana dashboard to Grafana's dashboard sidecar.

kube-prometheus-stack's Grafana (and the grafana chart with `sidecar.dashboards.enabled`) loads
every ConfigMap labelled `grafana_dashboard: "1"`; its `folderAnnotation` (we write
`grafana_folder`) picks the folder. The dashboard is this instance's copy: its own uid, so two
SttServers never overwrite each other's, with namespace and SttServer preselected.
"""

from __future__ import annotations

from typing import Any, Final

from stt_operator.builders.labels import metadata
from stt_operator.spec import SttServerSpec

SIDECAR_LABEL: Final = {"grafana_dashboard": "1"}
FOLDER_ANNOTATION: Final = "grafana_folder"
SUFFIX: Final = "-grafana-dashboard"


def dashboard_configmap_name(spec: SttServerSpec) -> str:
    return f"{spec.name}{SUFFIX}"


def build_grafana_dashboard(spec: SttServerSpec) -> dict[str, Any]:
    """The ConfigMap `<name>-grafana-dashboard` holding `stt-server.json` (compact JSON)."""
    # Imported here: the dashboards share the PrometheusRule's status sets, so they import builders.
    from stt_operator.dashboards import dashboard_json

    settings = spec.monitoring.grafana_dashboard
    meta = metadata(spec, extra_labels={**settings.labels, **SIDECAR_LABEL})
    meta["name"] = dashboard_configmap_name(spec)
    if settings.folder:
        meta["annotations"] = {FOLDER_ANNOTATION: settings.folder}
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
        "data": {"stt-server.json": dashboard_json(namespace=spec.namespace, sttserver=spec.name,
                                                  thresholds=spec.monitoring.thresholds, indent=None)},
    }

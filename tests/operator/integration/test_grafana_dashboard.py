"""`spec.monitoring.grafanaDashboard` on the local cluster: the operator keeps the dashboard ConfigMap
next to the server's own ConfigMap (two children of one kind: neither is taken for stale), the API
server stores it with its last-applied record, and turning the field off deletes only it."""

from __future__ import annotations

import json

from operator_cluster import Cluster, load_sample, unplaceable


async def test_dashboard_configmap_is_kept_beside_the_server_configmap_and_removed_when_off(cluster: Cluster) -> None:
    server = unplaceable(load_sample("minimal"), name="dash")
    server["spec"]["monitoring"] = {"grafanaDashboard": {"enabled": True, "folder": "Speech"}}
    cluster.apply(server)
    dashboard = await cluster.wait_object("ConfigMap", "dash-grafana-dashboard", what="the dashboard ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Speech"
    model = json.loads(dashboard["data"]["stt-server.json"])
    assert model["title"] == f"stt-server: {cluster.namespace}/dash"
    # Full passes after both exist: the server's ConfigMap and the dashboard's both stay.
    await cluster.wait_resyncs(count=2)
    assert await cluster.get("ConfigMap", "dash") is not None
    assert await cluster.get("ConfigMap", "dash-grafana-dashboard") is not None

    cluster.patch("SttServer", "dash", {"spec": {"monitoring": {"grafanaDashboard": {"enabled": False}}}})
    await cluster.wait_gone("ConfigMap", "dash-grafana-dashboard")
    await cluster.wait_resyncs(count=1)
    assert await cluster.get("ConfigMap", "dash") is not None

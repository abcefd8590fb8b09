"""Drift correction, status from real state, the scale subresource, and deletion through GC."""

from __future__ import annotations

from operator_cluster import Cluster, load_sample, wait_for


async def _ready_server(cluster: Cluster) -> str:
    sample = load_sample("minimal")
    cluster.apply(sample)
    name: str = sample["metadata"]["name"]
    await wait_for(lambda: cluster.get("Service", name) and cluster.get("Deployment", name), what="children")
    return name


async def test_deleted_and_edited_children_are_put_back(cluster: Cluster) -> None:
    name = await _ready_server(cluster)
    old_uid = cluster.get("Deployment", name)["metadata"]["uid"]  # type: ignore[index]
    cluster.delete("Deployment", name)
    back = await wait_for(lambda: cluster.get("Deployment", name), what="the Deployment to return", timeout=5)
    assert back["metadata"]["uid"] != old_uid

    service = cluster.get("Service", name)
    assert service is not None
    ports = service["spec"]["ports"]
    cluster.patch("Service", name, {"spec": {"ports": [{**ports[0], "port": 9999}]}})
    await wait_for(lambda: (cluster.get("Service", name) or {})["spec"]["ports"][0]["port"] == 50051,
                   what="the Service port to be restored", timeout=5)

    config = cluster.get("ConfigMap", name)
    assert config is not None
    cluster.patch("ConfigMap", name, {"data": {"config.yaml": "server: {grpc_port: 1}\n"}})
    await wait_for(lambda: (cluster.get("ConfigMap", name) or {}).get("data") == config["data"],
                   what="the ConfigMap to be restored", timeout=5)


async def test_status_follows_the_deployment(cluster: Cluster) -> None:
    name = await _ready_server(cluster)
    await wait_for(lambda: cluster.condition(name, "Ready"), what="a Ready condition")
    assert cluster.condition(name, "Ready")["status"] == "False"  # type: ignore[index]
    cluster.play_deployment_controller(name)
    ready = await wait_for(lambda: (c := cluster.condition(name, "Ready")) and c["status"] == "True" and c,
                           what="Ready=True after the Deployment reports ready")
    status = (cluster.get("SttServer", name) or {})["status"]
    assert status["replicaSummary"] == "1/1" and status["readyReplicas"] == 1
    assert status["endpoints"][0]["address"] == f"{name}.test.svc:50051"
    assert cluster.condition(name, "Progressing")["status"] == "False"  # type: ignore[index]
    await cluster.wait_for_event(name, "Normal", "Ready")
    # A pod that stops being ready is seen too; the transition time of Ready moves with it.
    cluster.play_deployment_controller(name, ready=0)
    await wait_for(lambda: (cluster.condition(name, "Ready") or {}).get("status") == "False", what="Ready=False")
    assert cluster.condition(name, "Ready")["lastTransitionTime"] >= ready["lastTransitionTime"]  # type: ignore[index]


async def test_scale_subresource_drives_replicas(cluster: Cluster) -> None:
    name = await _ready_server(cluster)
    store, rtype = cluster.server.store, cluster.rtype("SttServer")
    from stt_localfleet import routing

    target = routing.Target(rtype, "test", name, "scale")
    routing.handle(store, target, method="PATCH", params={}, body={"spec": {"replicas": 3}},
                   content_type="application/merge-patch+json")
    await wait_for(lambda: (cluster.get("Deployment", name) or {})["spec"]["replicas"] == 3,
                   what="Deployment replicas from the scale subresource")
    cluster.play_deployment_controller(name)
    await wait_for(lambda: (cluster.get("SttServer", name) or {}).get("status", {}).get("replicas") == 3,
                   what="status.replicas for the scale subresource")
    scale = routing.handle(store, target, method="GET", params={}, body=None, content_type="")
    assert scale["status"]["replicas"] == 3 and "app.kubernetes.io/instance" in scale["status"]["selector"]


async def test_deleting_the_server_removes_its_children(cluster: Cluster) -> None:
    name = await _ready_server(cluster)
    cluster.delete("SttServer", name)
    await wait_for(lambda: cluster.get("SttServer", name) is None, what="the SttServer to go (finalizers done)")
    for kind in ("ConfigMap", "Deployment", "Service"):
        assert cluster.get(kind, name) is None, f"{kind} survived its owner"

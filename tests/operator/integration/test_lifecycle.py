"""Drift correction, status from real pods, the scale subresource, and deletion through the real GC."""

from __future__ import annotations

import json

from local_cluster import LocalCluster
from operator_cluster import Cluster, load_sample, unplaceable, wait_for
from stt_localfleet.controlplane import NODE_NAME

INSTANCE = "app.kubernetes.io/instance"


async def _server(cluster: Cluster, *, runs: bool = False) -> str:
    """The minimal sample, applied; with `runs` its pod really runs, else it stays Pending."""
    sample = load_sample("minimal")
    cluster.apply(sample if runs else unplaceable(sample))
    name: str = sample["metadata"]["name"]
    await cluster.wait_object("Service", name)
    await cluster.wait_object("Deployment", name)
    return name


async def test_deleted_and_edited_children_are_put_back(cluster: Cluster) -> None:
    name = await _server(cluster)
    old_uid = ((await cluster.get("Deployment", name)) or {})["metadata"]["uid"]
    cluster.delete("Deployment", name)
    back = await cluster.wait_object("Deployment", name, lambda d: d["metadata"]["uid"] != old_uid,
                                     what="a new Deployment")
    assert back["spec"]["replicas"] == 1

    service = await cluster.get("Service", name)
    assert service is not None
    ports = service["spec"]["ports"]
    cluster.patch("Service", name, {"spec": {"ports": [{**ports[0], "port": 9999}]}})
    await cluster.wait_object("Service", name, lambda s: s["spec"]["ports"][0]["port"] == 50051,
                              what="the Service port to be restored")

    config = await cluster.get("ConfigMap", name)
    assert config is not None
    cluster.patch("ConfigMap", name, {"data": {"config.yaml": "server: {grpc_port: 1}\n"}})
    await cluster.wait_object("ConfigMap", name, lambda c: c.get("data") == config["data"],
                              what="the ConfigMap to be restored")
    await cluster.wait_for_event(name, "Normal", "UpdatedConfigMap")


async def test_status_follows_real_pods(cluster: Cluster, local_cluster: LocalCluster) -> None:
    name = await _server(cluster, runs=True)
    ready = await cluster.wait_condition(name, "Ready", "True", timeout=90)
    status = await cluster.status(name)
    assert status["replicaSummary"] == "1/1" and status["readyReplicas"] == 1
    assert ((await cluster.condition(name, "Progressing")) or {})["status"] == "False"
    await cluster.wait_for_event(name, "Normal", "Ready")

    # The node goes into maintenance and the pod is lost: its replacement cannot be placed, so the
    # server is not ready, and says so, until the node takes pods again.
    local_cluster.kubectl("cordon", NODE_NAME)
    try:
        cluster.kubectl("delete", "pods", "-l", f"{INSTANCE}={name}", "--wait=false")
        lost = await cluster.wait_condition(name, "Ready", "False")
        assert lost["reason"] == "ReplicasNotReady" and lost["lastTransitionTime"] >= ready["lastTransitionTime"]
        await cluster.wait_for_event(name, "Warning", "NotReady")

        async def pending() -> list[dict[str, object]] | None:
            pods = await cluster.items("Pod", labels={INSTANCE: name})
            return [p for p in pods if not p["metadata"].get("deletionTimestamp")
                    and p["status"].get("phase") == "Pending"] or None
        await wait_for(pending, what="the replacement pod, Pending on a cordoned node")
        assert ((await cluster.condition(name, "Ready")) or {})["status"] == "False"
    finally:
        local_cluster.kubectl("uncordon", NODE_NAME)
    await cluster.wait_condition(name, "Ready", "True", timeout=90)


async def test_scale_subresource_drives_replicas(cluster: Cluster) -> None:
    name = await _server(cluster)
    cluster.kubectl("scale", f"sttservers.sttfleet.io/{name}", "--replicas=3")
    await cluster.wait_object("Deployment", name, lambda d: d["spec"]["replicas"] == 3,
                              what="Deployment replicas from the scale subresource")

    # status.replicas counts the pods the real replicaset controller made (Pending here).
    async def three() -> bool:
        return (await cluster.status(name)).get("replicas") == 3
    await wait_for(three, what="status.replicas for the scale subresource")
    scale = json.loads(cluster.kubectl("get", f"sttservers.sttfleet.io/{name}", "--subresource=scale", "-o", "json"))
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    assert f"{INSTANCE}={name}" in scale["status"]["selector"]
    assert ((await cluster.get("SttServer", name)) or {})["spec"]["replicas"] == 3
    assert await cluster.get("PodDisruptionBudget", name) is not None


async def test_deleting_the_server_removes_its_children(cluster: Cluster) -> None:
    name = await _server(cluster)
    cluster.delete("SttServer", name)  # waits until kopf has released its finalizer
    assert await cluster.get("SttServer", name) is None
    # The real garbage collector follows the ownerReferences.
    for kind in ("ConfigMap", "Deployment", "Service"):
        await cluster.wait_gone(kind, name)

    async def no_pods() -> bool:
        return not await cluster.items("Pod", labels={INSTANCE: name})
    await wait_for(no_pods, what="the pods to go", timeout=30)

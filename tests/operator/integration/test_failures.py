"""Invalid specs become a readable Degraded condition; API conflicts and 5xx are retried to convergence."""

from __future__ import annotations

import copy

from operator_cluster import Cluster, load_sample, wait_for


async def test_invalid_spec_is_degraded_and_others_are_still_served(cluster: Cluster) -> None:
    bad = copy.deepcopy(load_sample("minimal"))
    bad["metadata"]["name"] = "broken"
    # The CRD's CEL rule forbids this on a real cluster; CEL is not emulated, so parse_spec must catch it.
    bad["spec"]["service"] = {"type": "ClusterIP", "nodePort": 32051}
    cluster.apply(bad)
    degraded = await wait_for(lambda: (c := cluster.condition("broken", "Degraded")) and c["status"] == "True" and c,
                              what="Degraded=True on the invalid SttServer")
    assert degraded["reason"] == "InvalidSpec" and "nodePort" in degraded["message"]
    await cluster.wait_for_event("broken", "Warning", "Degraded")
    assert cluster.get("Deployment", "broken") is None

    good = load_sample("minimal")
    cluster.apply(good)
    await wait_for(lambda: cluster.get("Deployment", good["metadata"]["name"]), what="the valid one's Deployment")

    cluster.patch("SttServer", "broken", {"spec": {"service": {"nodePort": None}}})
    await wait_for(lambda: (cluster.condition("broken", "Degraded") or {}).get("status") == "False",
                   what="Degraded=False once the spec is fixed")
    await wait_for(lambda: cluster.get("Deployment", "broken"), what="children of the fixed SttServer")
    await cluster.wait_for_event("broken", "Normal", "Recovered")


async def test_conflicts_and_server_errors_converge(cluster: Cluster) -> None:
    faults = cluster.server.faults
    created_service = faults.add(method="POST", path=r"/namespaces/test/services$", status=500, times=2)
    created_deployment = faults.add(method="POST", path=r"/namespaces/test/deployments$", status=409, times=1)
    status_conflict = faults.add(method="PATCH", path=r"/sttservers/[^/]+/status$", status=409, times=2)
    sample = load_sample("minimal")
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    await wait_for(lambda: cluster.get("Service", name) and cluster.get("Deployment", name),
                   what="children despite 500s and 409s", timeout=20)
    await wait_for(lambda: (cluster.get("SttServer", name) or {}).get("status"), what="status despite 409s",
                   timeout=20)
    assert created_service.hits == 2 and created_deployment.hits == 1 and status_conflict.hits == 2

    faults.add(method="PATCH", path=r"/namespaces/test/services/", status=500, times=3)
    cluster.patch("Service", name, {"spec": {"ports": [{"name": "grpc", "port": 1}]}})
    await wait_for(lambda: (cluster.get("Service", name) or {})["spec"]["ports"][0]["port"] == 50051,
                   what="drift corrected through 500s", timeout=20)

"""The real operator makes every child of minimal and full SttServers, and rolls spec changes out."""

from __future__ import annotations

from typing import Any

from operator_cluster import Cluster, load_sample, wait_for
from schema_validation import validate_manifest

CORE_KINDS = ("ConfigMap", "Deployment", "Service")


def _validate(child: dict[str, Any]) -> None:
    """Every child, as stored, passes the Kubernetes / prometheus-operator schemas (tests/schema_validation.py)."""
    clean = {k: v for k, v in child.items() if k != "status"}
    clean["metadata"] = {k: v for k, v in child["metadata"].items()
                         if k not in ("uid", "resourceVersion", "generation", "creationTimestamp")}
    validate_manifest(clean)


def _children(cluster: Cluster, name: str, kinds: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
    found = {kind: cluster.get(kind, name) for kind in kinds}
    return found if all(found.values()) else None  # type: ignore[return-value]


async def test_minimal_server_gets_its_children(cluster: Cluster) -> None:
    sample = load_sample("minimal")
    name = sample["metadata"]["name"]
    server = cluster.apply(sample)
    children = await wait_for(lambda: _children(cluster, name, CORE_KINDS), what="ConfigMap, Deployment, Service")
    for child in children.values():
        refs = child["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("SttServer", server["metadata"]["uid"], True)]
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stt-operator"
        _validate(child)
    assert children["Service"]["spec"]["ports"][0]["port"] == 50051
    container = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == sample["spec"]["image"]
    assert cluster.get("PodDisruptionBudget", name) is None  # one replica: nothing to protect
    status = await wait_for(lambda: (cluster.get("SttServer", name) or {}).get("status"), what="a status")
    assert status["observedGeneration"] == 1
    assert "monitoring.coreos.com" in status["monitoring"]  # says why ServiceMonitor was skipped
    assert cluster.condition(name, "Ready")["status"] == "False"  # no pod is ready yet: never assumed
    reasons = {reason for _, reason, _ in cluster.events_for(name)}
    assert {"CreatedConfigMap", "CreatedDeployment", "CreatedService"} <= reasons


async def test_full_server_gets_monitoring_children(monitored_cluster: Cluster) -> None:
    cluster = monitored_cluster
    sample = load_sample("gpu")
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    kinds = (*CORE_KINDS, "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule")
    children = await wait_for(lambda: _children(cluster, name, kinds), what=", ".join(kinds))
    for child in children.values():
        _validate(child)
    resources = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] in (1, "1")
    status = await wait_for(lambda: (cluster.get("SttServer", name) or {}).get("status"), what="a status")
    assert status.get("monitoring", "enabled") == "enabled"


async def test_spec_changes_roll_out(cluster: Cluster) -> None:
    sample = load_sample("minimal")
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    first = await wait_for(lambda: cluster.get("Deployment", name), what="the Deployment")
    config = cluster.get("ConfigMap", name)
    assert config is not None
    template_annotations = first["spec"]["template"]["metadata"].get("annotations") or {}

    # A server limit lives in the ConfigMap; its hash on the pod template rolls the pods.
    cluster.patch("SttServer", name, {"spec": {"limits": {"maxSessions": 7}}})
    new_config = await wait_for(
        lambda: (c := cluster.get("ConfigMap", name)) and c["data"] != config["data"] and c, what="new config")
    assert "7" in new_config["data"]["config.yaml"]
    rolled = await wait_for(
        lambda: (d := cluster.get("Deployment", name))
        and (d["spec"]["template"]["metadata"].get("annotations") or {}) != template_annotations and d,
        what="a new pod template")
    assert rolled["metadata"]["generation"] > first["metadata"]["generation"]

    # Two replicas get a PodDisruptionBudget; back to one, it goes away again.
    cluster.patch("SttServer", name, {"spec": {"replicas": 2}})
    await wait_for(lambda: cluster.get("PodDisruptionBudget", name), what="a PDB for 2 replicas")
    assert (cluster.get("Deployment", name) or {})["spec"]["replicas"] == 2
    cluster.patch("SttServer", name, {"spec": {"replicas": 1}})
    await wait_for(lambda: cluster.get("PodDisruptionBudget", name) is None, what="the PDB to go")
    await cluster.wait_for_event(name, "Normal", "DeletedPodDisruptionBudget")

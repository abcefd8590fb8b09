"""The real operator makes every child of minimal and full SttServers, and rolls spec changes out.

The scenario without prometheus-operator comes first in this module: CRDs are cluster-wide, and
once the monitored test has installed the prometheus-operator CRDs they stay for the session.
"""

from __future__ import annotations

import json
import re
from typing import Any

from operator_cluster import Cluster, load_sample, unplaceable, wait_for
from schema_validation import validate_manifest

CORE_KINDS = ("ConfigMap", "Deployment", "Service")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _validate(child: dict[str, Any]) -> None:
    """Every child, as stored, passes the Kubernetes / prometheus-operator schemas (tests/schema_validation.py)."""
    clean = {k: v for k, v in child.items() if k != "status"}
    clean["metadata"] = {k: v for k, v in child["metadata"].items()
                         if k not in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")}
    validate_manifest(clean)


async def _children(cluster: Cluster, name: str, kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    async def probe() -> dict[str, dict[str, Any]] | None:
        found = {kind: await cluster.get(kind, name) for kind in kinds}
        return found if all(found.values()) else None  # type: ignore[return-value]
    return await wait_for(probe, what=", ".join(kinds))


async def test_minimal_server_gets_its_children_and_becomes_ready(unmonitored_cluster: Cluster) -> None:
    cluster = unmonitored_cluster
    sample = load_sample("minimal")
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    server = await cluster.get("SttServer", name)
    assert server is not None
    children = await _children(cluster, name, CORE_KINDS)
    for child in children.values():
        refs = child["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("SttServer", server["metadata"]["uid"], True)]
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stt-operator"
        _validate(child)
    assert children["Service"]["spec"]["ports"][0]["port"] == 50051
    container = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == sample["spec"]["image"]
    assert await cluster.get("PodDisruptionBudget", name) is None  # one replica: nothing to protect
    # The real controllers, scheduler and kubelet run the pod; the status follows what they report.
    ready = await cluster.wait_condition(name, "Ready", "True", timeout=90)
    assert ready["reason"] == "AllReplicasReady"
    status = await cluster.status(name)
    assert status["observedGeneration"] == 1 and status["replicaSummary"] == "1/1"
    assert status["endpoints"][0]["address"] == f"{name}.{cluster.namespace}.svc:50051"
    assert "monitoring.coreos.com" in status["monitoring"]  # says why ServiceMonitor was skipped
    pods = await cluster.items("Pod", labels={"app.kubernetes.io/instance": name})
    assert [p["spec"]["nodeName"] for p in pods] == ["localfleet"]
    await cluster.wait_for_event(name, "Normal", "Ready")
    reasons = {reason for _, reason, _ in await cluster.events_for(name)}
    assert {"CreatedConfigMap", "CreatedDeployment", "CreatedService"} <= reasons


async def test_full_server_gets_monitoring_children_and_a_quiet_operator_writes_nothing(
        monitored_cluster: Cluster) -> None:
    cluster = monitored_cluster
    sample = load_sample("gpu")
    del sample["spec"]["service"]["nodePort"]  # node ports are cluster-wide: let the API server pick one
    sample["spec"]["resources"]["requests"]["cpu"] = "1.5"  # as people write it; stored as "1500m"
    sample["spec"]["autoscaling"]["scrapeIntervalSeconds"] = 1  # its passes, too, must write nothing below
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    kinds = (*CORE_KINDS, "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "AlertmanagerConfig")
    children = await _children(cluster, name, kinds)
    for child in children.values():
        _validate(child)
    routes = children["AlertmanagerConfig"]["spec"]["route"]["routes"]
    assert [(r["matchers"][0]["value"], r["receiver"]) for r in routes] == [("critical", "page"), ("warning", "ticket")]
    resources = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert children["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1

    # No such RuntimeClass here: the real replicaset controller cannot create the pods, and says so.
    degraded = await cluster.wait_condition(name, "Degraded", "True")
    assert degraded["reason"] == "RolloutFailed" and 'RuntimeClass "nvidia" not found' in degraded["message"]
    assert (await cluster.status(name))["monitoring"] == "enabled"

    # The autoscaler's first pass with a Deployment (no pods can be made: no metrics) writes its part once.
    async def autoscaled() -> bool:
        return "autoscaling" in await cluster.status(name)
    await wait_for(autoscaled, what="the autoscaler's first status")

    # The API server fills defaults and re-spells values (quantities, the CRDs' defaults); a
    # reconcile of what is already there must still write nothing. The audit log is the witness.
    audit = cluster.local.audit_log
    mark = audit.stat().st_size
    await cluster.wait_resyncs(count=3)
    writes = [(e["verb"], e["requestURI"]) for e in _audit_events(audit.read_bytes()[mark:])
              if e["verb"] in WRITE_VERBS and (e.get("objectRef") or {}).get("namespace") == cluster.namespace
              and e["user"]["username"] == "kubernetes-admin" and not e.get("userAgent", "").startswith("kubectl")]
    assert writes == []


def _audit_events(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode(errors="replace").splitlines() if line.startswith("{")]


async def test_spec_changes_roll_out(cluster: Cluster) -> None:
    sample = unplaceable(load_sample("minimal"))
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    first = await cluster.wait_object("Deployment", name)
    config = await cluster.get("ConfigMap", name)
    assert config is not None
    template_annotations = first["spec"]["template"]["metadata"].get("annotations") or {}

    # A server limit lives in the ConfigMap; its hash on the pod template rolls the pods.
    cluster.patch("SttServer", name, {"spec": {"limits": {"maxSessions": 7}}})
    new_config = await cluster.wait_object("ConfigMap", name, lambda c: c["data"] != config["data"],
                                           what="the new config")
    assert re.search(r"\b7\b", new_config["data"]["config.yaml"])
    rolled = await cluster.wait_object(
        "Deployment", name, lambda d: (d["spec"]["template"]["metadata"].get("annotations") or {}) != template_annotations,
        what="a new pod template")
    assert rolled["metadata"]["generation"] > first["metadata"]["generation"]
    await cluster.wait_for_event(name, "Normal", "UpdatedDeployment")

    # Two replicas get a PodDisruptionBudget; back to one, it goes away again.
    cluster.patch("SttServer", name, {"spec": {"replicas": 2}})
    await cluster.wait_object("PodDisruptionBudget", name, what="a PDB for 2 replicas")
    assert ((await cluster.get("Deployment", name)) or {})["spec"]["replicas"] == 2
    cluster.patch("SttServer", name, {"spec": {"replicas": 1}})
    await cluster.wait_gone("PodDisruptionBudget", name)
    await cluster.wait_for_event(name, "Normal", "DeletedPodDisruptionBudget")

"""The chart on the local cluster, which enforces RBAC for real: both RBAC modes run the whole
SttServer lifecycle without one 403 in the audit log and grant nothing outside the watched
namespaces; two replicas hand over through the Lease; `helm uninstall` leaves SttServers deletable."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Final

import pytest
from local_cluster import (
    LocalCluster,
    operator_installed,
    rbac_denials,
    small_sttserver,
    sttserver_ready,
    wait_until,
)

IMAGE: Final = ("image.repository=stt-fleet/stt-operator", "image.tag=dev",
                "extraEnv[0].name=STT_OPERATOR_RESYNC_SEC", "extraEnv[0].value=5")
CHILDREN: Final = ("deployment", "service", "configmap")
KOPF_FINALIZER: Final = "kopf.zalando.org/KopfFinalizerMarker"

pytestmark = pytest.mark.slow




def children_gone(cluster: LocalCluster, namespace: str, name: str) -> bool:
    return all(cluster.get(kind, name, namespace=namespace) is None for kind in CHILDREN)


def run_lifecycle(cluster: LocalCluster, namespace: str) -> None:
    """Create, Ready, edit the spec, `kubectl scale`, delete: children follow at each step."""
    cluster.apply(small_sttserver("life"), namespace=namespace)
    wait_until(lambda: sttserver_ready(cluster, namespace, "life"), what="SttServer life Ready", timeout=240, every=1.0)
    hash_of = lambda: (cluster.get("deployment", "life", namespace=namespace) or {}).get(
        "spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}).get("sttfleet.io/config-hash")
    before = hash_of()
    cluster.kubectl("patch", "stt", "life", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"limits": {"maxSessions": 7}}}))
    wait_until(lambda: hash_of() not in (None, before), what="the spec edit rolled into the Deployment", timeout=60)
    cluster.kubectl("scale", "stt/life", "-n", namespace, "--replicas=2")
    wait_until(lambda: (cluster.get("deployment", "life", namespace=namespace) or {}).get("spec", {}).get(
        "replicas") == 2, what="kubectl scale reaching the Deployment", timeout=60)
    cluster.kubectl("delete", "stt", "life", "-n", namespace, "--timeout=120s")
    wait_until(lambda: children_gone(cluster, namespace, "life"), what="children garbage-collected", timeout=120)


def can_i(cluster: LocalCluster, user: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    return result.stdout.strip() == "yes"


def test_cluster_wide_release_runs_the_lifecycle_without_a_403(local_cluster: LocalCluster, sttserver_crd: None,
                                                               namespace: str) -> None:
    op_ns = local_cluster.new_namespace("op-cw")
    user = f"system:serviceaccount:{op_ns}:stt-cw"
    try:
        with operator_installed(local_cluster, release="stt-cw", namespace=op_ns, values=IMAGE):
            assert local_cluster.get("clusterrole", f"stt-cw-{op_ns}") is not None
            run_lifecycle(local_cluster, namespace)
            count, denied = rbac_denials(local_cluster, user)
            assert count > 0, f"no request by {user}: is the operator running in-cluster?"
            assert denied == [], f"the chart's RBAC refused the operator: {denied}"
            # Cluster-wide, yet least privilege: no Secret listing, no writes to Secrets or pods.
            assert can_i(local_cluster, user, "get", "secrets", "-n", namespace)
            assert not can_i(local_cluster, user, "list", "secrets", "-n", namespace)
            assert not can_i(local_cluster, user, "delete", "pods", "-n", namespace)
            assert can_i(local_cluster, user, "update", "sttservers.sttfleet.io", "--subresource=finalizers",
                          "-n", namespace)
    finally:
        local_cluster.delete_namespace(op_ns)


def test_namespaced_release_runs_the_lifecycle_without_a_403_and_sees_nothing_else(
        local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> None:
    op_ns = local_cluster.new_namespace("op-ns")
    other = local_cluster.new_namespace("unwatched")
    user = f"system:serviceaccount:{op_ns}:stt-ns"
    try:
        with operator_installed(local_cluster, release="stt-ns", namespace=op_ns,
                                values=(*IMAGE, f"watchNamespaces={{{namespace}}}")):
            assert local_cluster.get("role", f"stt-ns-{op_ns}", namespace=namespace) is not None
            run_lifecycle(local_cluster, namespace)
            count, denied = rbac_denials(local_cluster, user)
            assert count > 0 and denied == [], f"the chart's RBAC refused the operator: {denied}"
            assert can_i(local_cluster, user, "get", "secrets", "-n", namespace)
            assert not can_i(local_cluster, user, "get", "secrets", "-n", other)
            assert not can_i(local_cluster, user, "get", "secrets", "-A")
            assert not can_i(local_cluster, user, "create", "deployments", "-n", other)
            assert not can_i(local_cluster, user, "patch", "sttservers.sttfleet.io", "-n", other)
    finally:
        local_cluster.delete_namespace(op_ns)
        local_cluster.delete_namespace(other)


def created_events(cluster: LocalCluster, namespace: str, name: str) -> list[str]:
    out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json",
                          f"--field-selector=involvedObject.name={name}").stdout
    return sorted(e["reason"] for e in json.loads(out)["items"] if e["reason"].startswith("Created"))


def test_two_replicas_hand_over_through_the_lease(local_cluster: LocalCluster, sttserver_crd: None,
                                                   namespace: str) -> None:
    op_ns = local_cluster.new_namespace("op-ha")
    try:
        with operator_installed(local_cluster, release="stt-ha", namespace=op_ns,
                                values=(*IMAGE, "replicaCount=2", f"watchNamespaces={{{namespace}}}")):
            holder = lambda: ((local_cluster.get("lease", "stt-ha", namespace=op_ns) or {}).get(
                "spec") or {}).get("holderIdentity")
            leader = wait_until(holder, what="a leader", timeout=60).rpartition("_")[0]
            pods = {p["metadata"]["name"] for p in local_cluster.get("pods", namespace=op_ns,
                                                                    selector="app.kubernetes.io/instance=stt-ha")}
            assert leader in pods and len(pods) == 2, (leader, pods)
            local_cluster.apply(small_sttserver("before"), namespace=namespace)
            wait_until(lambda: local_cluster.get("deployment", "before", namespace=namespace),
                       what="children of 'before'", timeout=60)
            local_cluster.kubectl("delete", "pod", leader, "-n", op_ns, "--wait=false")
            deleted_at = time.monotonic()
            local_cluster.apply(small_sttserver("after"), namespace=namespace)
            wait_until(lambda: local_cluster.get("deployment", "after", namespace=namespace),
                       what="the standby to create the children of 'after'", timeout=30)
            takeover = time.monotonic() - deleted_at
            new_leader = wait_until(holder, what="the new leader", timeout=5).rpartition("_")[0]
            # The standby or the Deployment's replacement pod, whichever asked first: a live pod, not the old one.
            live = {p["metadata"]["name"] for p in local_cluster.get("pods", namespace=op_ns,
                                                                    selector="app.kubernetes.io/instance=stt-ha")}
            assert new_leader != leader and new_leader in live, (leader, new_leader, live)
            print(f"takeover: children of 'after' {takeover:.1f} s after deleting the leader")
            # ServiceMonitor and PrometheusRule too once a test of this session installed their CRDs.
            monitoring = local_cluster.kubectl("get", "crd", "servicemonitors.monitoring.coreos.com",
                                               "prometheusrules.monitoring.coreos.com", check=False).returncode == 0
            expected = sorted(["CreatedConfigMap", "CreatedDeployment", "CreatedService",
                               *(["CreatedServiceMonitor", "CreatedPrometheusRule"] if monitoring else [])])
            seen: list[list[str]] = []
            try:
                wait_until(lambda: seen.append(created_events(local_cluster, namespace, "after")) or seen[-1] == expected,
                           what="the Created Events of 'after'", timeout=30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the Created Events seen last: {seen[-1:]}") from exc
            # Nothing was made twice: one Created Event per child, for both servers.
            assert created_events(local_cluster, namespace, "before") == expected
            assert created_events(local_cluster, namespace, "after") == expected
            local_cluster.kubectl("delete", "stt", "before", "after", "-n", namespace, "--timeout=60s")
            # The standby served its liveness probe and nobody crashed.
            standby = next(n for n in live if n != new_leader)
            probe = local_cluster.get("pod", standby, namespace=op_ns)
            url = f"http://{probe['status']['podIP']}:8080/healthz"
            wait_until(lambda: "standby" in subprocess.run(local_cluster.inside(["curl", "-sf", url]),
                                                           capture_output=True, text=True, timeout=30, check=False).stdout,
                       what=f"the standby's liveness answer at {url}", timeout=30, every=1.0)
            restarts = [(p["metadata"]["name"], s.get("restartCount")) for p in local_cluster.get(
                "pods", namespace=op_ns, selector="app.kubernetes.io/instance=stt-ha")
                for s in p["status"].get("containerStatuses") or ()]
            assert all(count == 0 for _, count in restarts), restarts
            count, denied = rbac_denials(local_cluster, f"system:serviceaccount:{op_ns}:stt-ha")
            assert count > 0 and denied == [], f"the chart's RBAC refused the operator: {denied}"
    finally:
        local_cluster.delete_namespace(op_ns)


def test_sttserver_deleted_after_helm_uninstall_goes_with_its_children(
        local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> None:
    op_ns = local_cluster.new_namespace("op-un")
    try:
        with operator_installed(local_cluster, release="stt-un", namespace=op_ns,
                                values=(*IMAGE, f"watchNamespaces={{{namespace}}}")):
            local_cluster.apply(small_sttserver("orphan"), namespace=namespace)
            wait_until(lambda: local_cluster.get("deployment", "orphan", namespace=namespace),
                       what="children of 'orphan'", timeout=60)
            # The operator holds no finalizer on it (no kopf timer, daemon or delete handler needs one);
            # the uninstall hook is still there for the kopf finalizers older operators put on.
            assert KOPF_FINALIZER not in (local_cluster.get("stt", "orphan", namespace=namespace)["metadata"]
                                          .get("finalizers") or [])
        # operator_installed ran `helm uninstall --wait`: the operator is gone, the hook released it.
        assert local_cluster.get("pods", namespace=op_ns, selector="app.kubernetes.io/instance=stt-un") == []
        assert local_cluster.get("stt", "orphan", namespace=namespace)["metadata"].get("finalizers") in (None, [])
        local_cluster.kubectl("delete", "stt", "orphan", "-n", namespace, "--timeout=30s")
        wait_until(lambda: children_gone(local_cluster, namespace, "orphan"), what="children garbage-collected",
                   timeout=120)
    finally:
        local_cluster.delete_namespace(op_ns)

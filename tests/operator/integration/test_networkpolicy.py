"""spec.networkPolicy on the real API server: the operator makes a NetworkPolicy the API server
accepts, owns it, restores it when someone deletes it, writes nothing while nothing changes, and
deletes it when the policy is disabled.

The local cluster has no CNI that enforces NetworkPolicy (pods share one network namespace), so
no test here can show that traffic is actually filtered; docs/operator.md says so.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from operator_cluster import Cluster, load_sample, unplaceable, wait_for
from schema_validation import validate_manifest

OPERATOR_NAMESPACE = "stt-operator-home"  # told through POD_NAMESPACE, as the chart does
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _audit_writes(cluster: Cluster, data: bytes) -> list[tuple[str, str]]:
    events = [json.loads(line) for line in data.decode(errors="replace").splitlines() if line.startswith("{")]
    return [(e["verb"], e["requestURI"]) for e in events
            if e["verb"] in WRITE_VERBS and (e.get("objectRef") or {}).get("namespace") == cluster.namespace
            and e["user"]["username"] == "kubernetes-admin" and not e.get("userAgent", "").startswith("kubectl")]


def _stored(policy: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in policy.items() if k != "status"}
    clean["metadata"] = {k: v for k, v in policy["metadata"].items()
                         if k not in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")}
    return clean


async def test_network_policy_is_made_kept_and_removed(cluster_api: Cluster, tmp_path: pathlib.Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", OPERATOR_NAMESPACE)
    cluster = cluster_api
    server = unplaceable(load_sample("minimal"), name="stt-np")
    server["spec"]["networkPolicy"] = {
        "enabled": True,
        "grpcFrom": [{"namespaceSelector": {"matchLabels": {"team": "voice"}}, "podSelector": {}},
                     {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}],
        "prometheusNamespaceSelector": {},  # every namespace: stored as {} and never re-patched
        "restFrom": [{"podSelector": {"matchLabels": {"app": "web"}}}],
    }
    async with cluster.operator(tmp_path / "operator.log"):
        cluster.apply(server)
        owner = await cluster.wait_object("SttServer", "stt-np")
        policy = await cluster.wait_object("NetworkPolicy", "stt-np", what="the NetworkPolicy")
        refs = policy["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == \
            [("SttServer", owner["metadata"]["uid"], True)]
        assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stt-operator"
        grpc, http, rest = policy["spec"]["ingress"]
        assert grpc["ports"] == [{"protocol": "TCP", "port": 50051}] and len(grpc["from"]) == 2
        assert rest == {"ports": [{"protocol": "TCP", "port": 8080}],
                        "from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
        assert http["ports"] == [{"protocol": "TCP", "port": 8000}]
        assert http["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}}},
            {"namespaceSelector": {}}]
        validate_manifest(_stored(policy))

        # Steady state: the stored policy is what we asked for, so resync passes send nothing.
        # (Once the first pass has posted its Events and status and a resync has run after it.)
        await cluster.wait_for_event("stt-np", "Normal", "CreatedNetworkPolicy")
        await cluster.wait_resyncs(count=1)
        audit = cluster.local.audit_log
        mark = audit.stat().st_size
        await cluster.wait_resyncs(count=3)
        assert _audit_writes(cluster, audit.read_bytes()[mark:]) == []

        # Deleted by hand: the operator puts it back (its watch of NetworkPolicies, or the next resync).
        cluster.delete("NetworkPolicy", "stt-np")
        back = await cluster.wait_object("NetworkPolicy", "stt-np",
                                         lambda p: p["metadata"]["uid"] != policy["metadata"]["uid"],
                                         what="the NetworkPolicy, re-created")
        assert back["spec"]["ingress"] == policy["spec"]["ingress"]

        # Disabled: the operator deletes the one it made, and says so.
        cluster.patch("SttServer", "stt-np", {"spec": {"networkPolicy": {"enabled": False}}})
        await cluster.wait_gone("NetworkPolicy", "stt-np")
        await cluster.wait_for_event("stt-np", "Normal", "DeletedNetworkPolicy")
        assert await cluster.get("Deployment", "stt-np") is not None


async def test_a_peer_the_api_server_would_refuse_is_a_degraded_condition(cluster: Cluster) -> None:
    server = unplaceable(load_sample("minimal"), name="stt-np-bad")
    # The CRD's schema cannot see this; parse_spec does, before the API server refuses the policy.
    server["spec"]["networkPolicy"] = {"enabled": True, "grpcFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                                                       "podSelector": {}}]}
    cluster.apply(server)
    degraded = await cluster.wait_condition("stt-np-bad", "Degraded", "True")
    assert "spec.networkPolicy.grpcFrom[0]" in degraded["message"], degraded

    async def no_policy() -> bool:
        return await cluster.get("NetworkPolicy", "stt-np-bad") is None
    assert await wait_for(no_policy, what="no NetworkPolicy", timeout=1)

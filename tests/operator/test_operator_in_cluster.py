"""The operator installed the way users install it: `helm install` of charts/stt-operator, so it runs as a
pod under the chart's ServiceAccount and RBAC with in-cluster configuration (projected token,
KUBERNETES_SERVICE_HOST/PORT). The API server's audit log then says what it did: no request of its
was refused (403), and in steady state with three Ready SttServers it writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pytest
from local_cluster import (
    LocalCluster,
    operator_installed,
    rbac_denials,
    small_sttserver,
    sttserver_ready,
    wait_until,
)

REPO: Final = Path(__file__).resolve().parents[2]
STEADY_STATE_SEC: Final = 60.0

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def watched(local_cluster: LocalCluster, sttserver_crd: None) -> Iterator[tuple[LocalCluster, str, str]]:
    """An operator release that watches one namespace; yields (cluster, watched namespace, operator SA user)."""
    watched_ns = local_cluster.new_namespace("op-watched")
    operator_ns = local_cluster.new_namespace("op-system")
    release = "stt-op"
    values = [f"watchNamespaces={{{watched_ns}}}", "extraEnv[0].name=STT_OPERATOR_RESYNC_SEC",
              "extraEnv[0].value=5", "image.repository=stt-fleet/stt-operator", "image.tag=dev"]
    with operator_installed(local_cluster, release=release, namespace=operator_ns, values=values):
        yield local_cluster, watched_ns, f"system:serviceaccount:{operator_ns}:{release}"
    local_cluster.delete_namespace(watched_ns)
    local_cluster.delete_namespace(operator_ns)


def audit_events(cluster: LocalCluster, user: str) -> list[dict[str, Any]]:
    lines = cluster.audit_log.read_text().splitlines() if cluster.audit_log.exists() else []
    return [e for e in map(json.loads, lines) if (e.get("user") or {}).get("username") == user]



def test_operator_pod_runs_under_the_charts_rbac_without_a_403(watched: tuple[LocalCluster, str, str]) -> None:
    cluster, namespace, user = watched
    cluster.apply(small_sttserver("rbac-probe"), namespace=namespace)
    wait_until(lambda: sttserver_ready(cluster, namespace, "rbac-probe"), what="SttServer rbac-probe Ready", timeout=180)
    count, refused = rbac_denials(cluster, user)
    assert count, f"no request by {user} in the audit log: is the operator running in-cluster?"
    assert not refused, f"the chart's RBAC refused the operator: {refused}"
    cluster.kubectl("delete", "stt", "rbac-probe", "-n", namespace, "--wait=true", "--timeout=120s")


def test_steady_state_with_three_ready_servers_writes_nothing(watched: tuple[LocalCluster, str, str]) -> None:
    cluster, namespace, user = watched
    names = [f"steady-{n}" for n in range(3)]
    cluster.apply([small_sttserver(n) for n in names], namespace=namespace)
    wait_until(lambda: all(sttserver_ready(cluster, namespace, n) for n in names), what="three Ready SttServers", timeout=240)
    # Let the last status writes of the start-up land, then watch a full minute of resyncs.
    wait_until(lambda: not _recent_writes(cluster, user, within=5.0), what="the start-up writes to settle",
               timeout=60, every=1.0)
    start = time.time()
    deadline = time.monotonic() + STEADY_STATE_SEC
    while time.monotonic() < deadline:
        cluster.check_alive()
        time.sleep(1.0)
    writes = [e for e in audit_events(cluster, user)
              if e["verb"] in {"create", "update", "patch", "delete"} and _stamp(e) >= start]
    assert writes == [], "the operator wrote in steady state:\n" + "\n".join(
        f"{e['verb']} {e.get('requestURI')}" for e in writes[:20])


def _stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()  # 3.11 reads the "Z"


def _recent_writes(cluster: LocalCluster, user: str, *, within: float) -> list[dict[str, Any]]:
    now = time.time()
    return [e for e in audit_events(cluster, user)
            if e["verb"] in {"create", "update", "patch", "delete"} and now - _stamp(e) < within]

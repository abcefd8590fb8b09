"""The kubelet's record of a local pod, its loopback address, and the status documents it publishes.

Pure helpers: what a Pod's `status` and a Deployment's `status` say, given the local pods, written
the way the kubelet and the deployment controller write them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stt_operator.autoscaling.kubeapi import resource_path
from stt_localfleet.podprocess import LaunchPlan, PodProcess


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(template: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


class AddressPool:
    """Loopback addresses for pods, lowest free first (127.0.0.1 stays the node's).

    An address whose ports something else already holds (another local fleet, a stray server)
    is skipped, so that pod's server does not crash-loop on "address already in use".
    """

    def __init__(self) -> None:
        self._used: set[int] = set()

    def allocate(self, ports: Sequence[int] = ()) -> str:
        for n in range(2, 65_000):
            if n in self._used:
                continue
            address = f"127.0.{n // 256}.{n % 256}"
            if all(_bindable(address, port) for port in ports):
                self._used.add(n)
                return address
        raise RuntimeError("no free loopback address for a pod")

    def release(self, address: str) -> None:
        _, _, c, d = (int(x) for x in address.split("."))
        self._used.discard(c * 256 + d)


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def container_ports(template: Mapping[str, Any]) -> list[int]:
    """The first container's ports (what its server will bind on the pod's address)."""
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return [int(p["containerPort"]) for p in containers[0].get("ports") or () if p.get("containerPort")]


@dataclass
class LocalPod:
    name: str
    namespace: str
    deployment: str
    template_hash: str
    address: str
    template: dict[str, Any]
    process: PodProcess | None = None
    plan: LaunchPlan | None = None
    ready: bool = False
    ready_since: float = 0.0
    deleting: bool = False
    created: float = field(default_factory=time.monotonic)
    restarts: int = 0
    next_restart: float = 0.0
    waiting: tuple[str, str] | None = None  # (reason, message) while it cannot start
    start_time: str | None = None
    ever_ready: bool = False
    next_probe: float = 0.0
    probe_successes: int = 0
    probe_failures: int = 0
    ready_changed_at: str = field(default_factory=lambda: now_iso())

    @property
    def path(self) -> str:
        return resource_path("v1", "pods", namespace=self.namespace, name=self.name)


def deletion_rank(pod: LocalPod) -> tuple[int, float, float]:
    """The ReplicaSet controller's order: not-ready first, then ready for the shortest time, newest."""
    return (1 if pod.ready else 0, -pod.ready_since, -pod.created)


def pod_status(pod: LocalPod, *, phase: str) -> dict[str, Any]:
    """`status` of the Pod object: phase, IP, conditions, the one container's state."""
    ready = "True" if pod.ready else "False"
    started = pod.start_time or now_iso()
    state: dict[str, Any] = ({"waiting": {"reason": pod.waiting[0], "message": pod.waiting[1]}}
                             if pod.waiting else {"running": {"startedAt": started}})
    containers = (pod.template.get("spec") or {}).get("containers") or [{}]
    status: dict[str, Any] = {
        "phase": phase, "hostIP": "127.0.0.1",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": pod.ready_changed_at},
            {"type": "Ready", "status": ready, "lastTransitionTime": pod.ready_changed_at},
        ],
        "containerStatuses": [{"name": containers[0].get("name", "server"), "ready": pod.ready,
                               "started": pod.process is not None, "restartCount": pod.restarts,
                               "state": state}],
    }
    if pod.process is not None:
        status["podIP"] = pod.address
        status["podIPs"] = [{"ip": pod.address}]
    if pod.start_time:
        status["startTime"] = pod.start_time
    return status


def deployment_status(dep: Mapping[str, Any], pods: Sequence[LocalPod], *, template_hash: str) -> dict[str, Any]:
    """`status` of a Deployment, counted over its local pods as the deployment controller counts."""
    spec = dep.get("spec") or {}
    desired = 1 if spec.get("replicas") is None else int(spec["replicas"])
    active = [p for p in pods if not p.deleting]
    ready = sum(p.ready for p in active)
    updated = sum(p.template_hash == template_hash for p in active)
    available = ready >= desired
    return {
        "observedGeneration": int((dep.get("metadata") or {}).get("generation") or 1),
        "replicas": len(active), "updatedReplicas": updated, "readyReplicas": ready,
        "availableReplicas": ready, "unavailableReplicas": max(0, desired - ready),
        "terminatingReplicas": len(pods) - len(active),
        "conditions": [
            {"type": "Available", "status": "True" if available else "False",
             "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if updated == desired == ready else "ReplicaSetUpdated"},
        ],
    }


def readiness_probe(template: Mapping[str, Any]) -> dict[str, Any]:
    """The first container's readinessProbe (empty when it has none)."""
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return dict(containers[0].get("readinessProbe") or {})

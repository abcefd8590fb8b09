"""The kubelet's record of a pod's containers, its loopback address, and the status it publishes.

Pure helpers: `ContainerRecord` is what the runtime knows of one container (state, last
termination, restarts, probe verdicts); `pod_phase`, `pod_conditions` and `pod_status` turn those
records into the Pod's `status` the way the kubelet computes it (kubelet_pods.go `getPhase`,
status/generate.go). The kubelet owns everything here except `PodScheduled` (the scheduler's) and
other controllers' conditions, which `pod_status` carries over unchanged.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

KUBELET_CONDITIONS: Final = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AddressPool:
    """Pod IPs from the pod CIDR, lowest free first (the node's own address is never handed out).

    An address whose ports something else already holds (a stray server, another kubelet) is
    skipped, so that pod's server does not crash-loop on "address already in use".
    """

    def __init__(self, cidr: str | ipaddress.IPv4Network = "10.244.0.0/16", *, node_ip: str = "10.244.0.1") -> None:
        self.network = ipaddress.IPv4Network(cidr)
        self.node_ip = ipaddress.IPv4Address(node_ip)
        self._used: set[ipaddress.IPv4Address] = set()

    def allocate(self, ports: Sequence[int] = (), *, prefer: str | None = None) -> str:
        """A free address; `prefer` (the pod's IP before a kubelet restart) when it is still free."""
        candidates: Iterable[ipaddress.IPv4Address] = self.network.hosts()
        if prefer and self._valid(prefer):
            candidates = itertools.chain([ipaddress.IPv4Address(prefer)], candidates)
        for address in candidates:
            if address in self._used or address == self.node_ip:
                continue
            if all(_bindable(str(address), port) for port in ports):
                self._used.add(address)
                return str(address)
        raise RuntimeError(f"no free address for a pod in {self.network}")

    def _valid(self, address: str) -> bool:
        try:
            return ipaddress.IPv4Address(address) in self.network
        except ValueError:
            return False

    def release(self, address: str) -> None:
        if self._valid(address):
            self._used.discard(ipaddress.IPv4Address(address))


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def pod_ports(pod: Mapping[str, Any]) -> list[int]:
    """Every container's TCP ports (what the pod's processes will bind on its address)."""
    spec = pod.get("spec") or {}
    return [int(p["containerPort"]) for c in spec.get("containers") or () for p in c.get("ports") or ()
            if p.get("containerPort") and p.get("protocol", "TCP") == "TCP"]


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    container_id: str = ""
    message: str = ""
    signal: int = 0

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason, "startedAt": self.started_at,
                               "finishedAt": self.finished_at}
        if self.container_id:
            doc["containerID"] = self.container_id
        if self.message:
            doc["message"] = self.message
        if self.signal:
            doc["signal"] = self.signal
        return doc


def terminated(exit_code: int, *, started_at: str, container_id: str = "", message: str = "") -> Terminated:
    """A termination from a process exit status (negative: killed by that signal, shown as 128+N)."""
    code = 128 - exit_code if exit_code < 0 else exit_code
    return Terminated(exit_code=code, reason="Completed" if code == 0 else "Error", started_at=started_at,
                      finished_at=now_iso(), container_id=container_id, message=message,
                      signal=-exit_code if exit_code < 0 else 0)


@dataclass
class ContainerRecord:
    """What the node knows of one container, from which its `containerStatuses` entry is written."""

    name: str
    image: str
    image_id: str = ""
    waiting: tuple[str, str] = ("ContainerCreating", "")  # (reason, message) while not running
    running_since: str | None = None
    pid: int | None = None
    terminated: Terminated | None = None  # the current state, when it ended and is not restarting
    last_terminated: Terminated | None = None
    restart_count: int = 0
    started: bool = False  # the startupProbe passed (or there is none)
    ready: bool = False
    init: bool = False

    @property
    def container_id(self) -> str:
        return f"localfleet://{self.pid}" if self.pid else ""

    def state(self) -> dict[str, Any]:
        if self.running_since is not None:
            return {"running": {"startedAt": self.running_since}}
        if self.terminated is not None:
            return {"terminated": self.terminated.document()}
        reason, message = self.waiting
        return {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name, "image": self.image, "imageID": self.image_id, "ready": self.ready,
            "started": self.started and self.running_since is not None, "restartCount": self.restart_count,
            "state": self.state(), "lastState": {"terminated": self.last_terminated.document()}
            if self.last_terminated else {},
        }
        if self.container_id:
            doc["containerID"] = self.container_id
        return doc


def pod_phase(restart_policy: str, containers: Sequence[ContainerRecord], *,
              init: Sequence[ContainerRecord] = (), terminal: bool = False) -> str:
    """The kubelet's getPhase (kubelet_pods.go) over the init and app containers' records."""
    pending_init = failed_init = 0
    for record in init:
        if record.running_since is not None:
            pending_init += 1
        elif record.terminated is not None:
            failed_init += record.terminated.exit_code != 0
        elif record.last_terminated is not None:
            failed_init += record.last_terminated.exit_code != 0
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for record in containers:
        if record.running_since is not None:
            running += 1
        elif record.terminated is not None:
            stopped += 1
            succeeded += record.terminated.exit_code == 0
        elif record.last_terminated is not None:
            stopped += 1  # waiting to restart (CrashLoopBackOff): it has run
        else:
            waiting += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    if running and not (pending_init or waiting):
        return "Running"
    if terminal:  # deleted and stopped: nothing restarts, whatever the policy; never-started is a failure
        return "Succeeded" if stopped and stopped == succeeded and not (pending_init or waiting) else "Failed"
    if pending_init or waiting or not stopped:
        return "Pending"
    if restart_policy == "Always":
        return "Running"  # every container is restarting
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"


def _condition(kind: str, ok: bool, previous: Mapping[str, Mapping[str, Any]], *, reason: str = "",
               message: str = "", generation: int | None = None) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind) or {}
    since = before.get("lastTransitionTime") if before.get("status") == status else None
    doc: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None,
                           "lastTransitionTime": since or now_iso()}
    if generation is not None:
        doc["observedGeneration"] = generation
    if not ok and reason:
        doc["reason"] = reason
    if not ok and message:
        doc["message"] = message
    return doc


def pod_conditions(pod: Mapping[str, Any], *, sandbox_ready: bool, init: Sequence[ContainerRecord],
                   containers: Sequence[ContainerRecord], terminal: bool = False,
                   last_written: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """PodReadyToStartContainers, Initialized, ContainersReady, Ready; other conditions carried over.

    Transition times come from `last_written` (the kubelet's own last status, fresher than a pod
    object the watch has not caught up with yet), else from the pod.
    """
    current = list((pod.get("status") or {}).get("conditions") or ())
    previous = {c.get("type", ""): c for c in [*current, *last_written]}
    generation = (pod.get("metadata") or {}).get("generation")
    pending_init = [r.name for r in init if r.terminated is None or r.terminated.exit_code != 0]
    unready = [r.name for r in containers if not r.ready]
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or ()]
    closed_gates = [g for g in gates if (previous.get(str(g)) or {}).get("status") != "True"]
    ready_message = (f"containers with unready status: [{' '.join(unready)}]" if unready
                     else f"the status of pod readiness gate {', '.join(map(str, closed_gates))} is not \"True\"")
    owned = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal, previous, generation=generation),
        _condition("Initialized", not pending_init, previous, reason="ContainersNotInitialized",
                   message=f"containers with incomplete status: [{' '.join(pending_init)}]", generation=generation),
        _condition("ContainersReady", not unready and not terminal, previous, reason="PodCompleted" if terminal
                   else "ContainersNotReady", message=ready_message if unready else "", generation=generation),
        _condition("Ready", not unready and not closed_gates and not terminal, previous,
                   reason="PodCompleted" if terminal else "ContainersNotReady" if unready
                   else "ReadinessGatesNotReady", message=ready_message, generation=generation),
    ]
    carried = [c for c in current if c.get("type") not in KUBELET_CONDITIONS]
    return carried + owned


def pod_status(pod: Mapping[str, Any], *, host_ip: str, pod_ip: str | None, start_time: str | None, phase: str,
               init: Sequence[ContainerRecord], containers: Sequence[ContainerRecord], sandbox_ready: bool,
               last_written: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Pod's `status` as the kubelet writes it (a merge patch of this replaces the kubelet's fields)."""
    terminal = phase in ("Succeeded", "Failed")
    status: dict[str, Any] = {
        "phase": phase, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}] if pod_ip else None, "startTime": start_time,
        "conditions": pod_conditions(pod, sandbox_ready=sandbox_ready, init=init, containers=containers,
                                     terminal=terminal, last_written=[
                                         c for c in (last_written or {}).get("conditions") or ()
                                         if c.get("type") in KUBELET_CONDITIONS]),
        "containerStatuses": [r.status() for r in containers],
        "initContainerStatuses": [r.status() for r in init] or None,
    }
    generation = (pod.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    return status

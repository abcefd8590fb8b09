"""The Node object and its Lease: registration and heartbeats of the local node.

`build_node` describes this host as the kubelet would (capacity and allocatable from psutil, no
`nvidia.com/gpu`, addresses, nodeInfo, healthy conditions); `build_lease` is its heartbeat in
`kube-node-lease`. `NodeHeart` registers the Node (or refreshes it after a restart), renews the
Lease every 10 s (duration 40 s) and reports the node's status every minute, so the node-lifecycle
controller never marks it NotReady and taints it `unreachable`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

from stt_localfleet.pods import now_iso

log = logging.getLogger("stt_localfleet.node")
LEASE_NAMESPACE: Final = "kube-node-lease"
LEASE_DURATION_SEC: Final = 40
RENEW_SEC: Final = 10.0
STATUS_REPORT_SEC: Final = 60.0
MAX_PODS: Final = 110
KUBELET_VERSION: Final = "v1.36.3"
_ARCH: Final = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def host_resources(workdir: Path) -> dict[str, str]:
    """This host's capacity: cpu, memory, ephemeral-storage (of the work dir's disk), pods."""
    disk = psutil.disk_usage(str(workdir))
    return {"cpu": str(psutil.cpu_count() or os.cpu_count() or 1), "memory": f"{psutil.virtual_memory().total // 1024}Ki",
            "ephemeral-storage": f"{disk.total // 1024}Ki", "pods": str(MAX_PODS)}


def node_conditions(previous: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Ready True, the pressure conditions False; transition times kept from `previous` (by type)."""
    now = now_iso()
    wanted = [("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
              ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
              ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
              ("Ready", "True", "KubeletReady", "kubelet is posting ready status")]
    out = []
    for kind, status, reason, message in wanted:
        before = (previous or {}).get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": since or now})
    return out


def build_node_status(*, node_ip: str, resources: Mapping[str, str], kubelet_version: str = KUBELET_VERSION,
                      previous: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    machine = platform.machine()
    return {
        "capacity": dict(resources), "allocatable": dict(resources),
        "conditions": node_conditions(previous),
        "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": platform.node()}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"), "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": _os_image(), "containerRuntimeVersion": "localfleet://0.1",
            "kubeletVersion": kubelet_version, "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": _ARCH.get(machine, machine),
        },
    }


def build_node(name: str, *, node_ip: str, resources: Mapping[str, str],
               kubelet_version: str = KUBELET_VERSION) -> dict[str, Any]:
    """The Node as the kubelet registers it (labels it may set under NodeRestriction)."""
    machine = platform.machine()
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": _ARCH.get(machine, machine), "beta.kubernetes.io/arch": _ARCH.get(machine, machine)}},
        "spec": {},
        "status": build_node_status(node_ip=node_ip, resources=resources, kubelet_version=kubelet_version),
    }


def micro_time(moment: datetime.datetime | None = None) -> str:
    """MicroTime, the format of a Lease's renewTime."""
    return (moment or datetime.datetime.now(tz=datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_lease(name: str, *, node_uid: str, renew_time: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SEC, "renewTime": renew_time},
    }


class NodeHeart:
    """Registers the Node, then keeps its Lease and status fresh until cancelled."""

    def __init__(self, api: KubeApi, *, name: str, node_ip: str, workdir: Path, renew_sec: float = RENEW_SEC,
                 status_sec: float = STATUS_REPORT_SEC) -> None:
        self.api = api
        self.name = name
        self.node_ip = node_ip
        self.workdir = workdir
        self.renew_sec = renew_sec
        self.status_sec = status_sec
        self.uid = ""

    @property
    def node_path(self) -> str:
        return resource_path("v1", "nodes", name=self.name)

    @property
    def lease_path(self) -> str:
        return resource_path("coordination.k8s.io/v1", "leases", namespace=LEASE_NAMESPACE, name=self.name)

    async def register(self) -> None:
        node = build_node(self.name, node_ip=self.node_ip, resources=host_resources(self.workdir))
        try:
            created = await self.api.create(resource_path("v1", "nodes"), node)
            self.uid = created["metadata"]["uid"]
            log.info("registered node %s", self.name)
        except ApiError as exc:
            if exc.status != 409:
                raise
            existing = await self.api.get(self.node_path)
            self.uid = existing["metadata"]["uid"]
            await self.report_status(existing)
            log.info("node %s was registered before; status refreshed", self.name)
        await self.renew()

    async def report_status(self, current: Mapping[str, Any] | None = None) -> None:
        current = current or await self.api.get(self.node_path)
        previous = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or ()}
        status = build_node_status(node_ip=self.node_ip, resources=host_resources(self.workdir), previous=previous)
        await self.api.merge_patch(self.node_path + "/status", {"status": status})

    async def renew(self) -> None:
        lease = build_lease(self.name, node_uid=self.uid, renew_time=micro_time())
        try:
            await self.api.merge_patch(self.lease_path, {"spec": lease["spec"]})
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.api.create(resource_path("coordination.k8s.io/v1", "leases", namespace=LEASE_NAMESPACE), lease)

    async def run(self) -> None:
        """Renew the Lease every `renew_sec` and report status every `status_sec`; errors are retried."""
        loop = asyncio.get_running_loop()
        next_status = loop.time() + self.status_sec
        while True:
            await asyncio.sleep(self.renew_sec)
            try:
                await self.renew()
                if loop.time() >= next_status:
                    await self.report_status()
                    next_status = loop.time() + self.status_sec
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("node heartbeat failed (retrying in %g s): %s", self.renew_sec, exc)

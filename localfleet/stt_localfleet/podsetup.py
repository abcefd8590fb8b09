"""The pod worker's rules that need no process: admission, grace periods, restarts, volume setup.

`admission_failure` is the kubelet's resource-fit admission for what the scheduler cannot have
checked (a pod bound by hand asking for `nvidia.com/gpu`); `grace_period` picks the deletion's or
the spec's grace; `restart_wanted` is `restartPolicy`; `volumes_ready` materialises every volume
of a pod under its directory and returns each volume's host directory for the bind mounts;
`hosts_file` is the kubelet-managed /etc/hosts of a pod.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from stt_localfleet.envvars import PodFacts, quantity
from stt_localfleet.sources import TokenCache
from stt_localfleet.volumes import check_host_path, plan_volumes, write_files

DEFAULT_GRACE_SEC: Final = 30.0


def admission_failure(pod: Mapping[str, Any], allocatable: Mapping[str, str]) -> tuple[str, str] | None:
    """(reason, message) when the node cannot hold the pod's requests for a resource it lacks."""
    spec = pod.get("spec") or {}
    wanted: dict[str, Any] = {}
    for container in spec.get("containers") or ():
        resources = container.get("resources") or {}
        for name, value in {**(resources.get("limits") or {}), **(resources.get("requests") or {})}.items():
            wanted[name] = wanted.get(name, 0) + quantity(value)
    for name, amount in sorted(wanted.items()):
        have = quantity(allocatable.get(name, "0"))
        if name not in ("cpu", "memory", "ephemeral-storage") and amount > have:
            message = (f"Pod was rejected: Node didn't have enough resource: {name}, "
                       f"requested: {amount}, used: 0, capacity: {have}")
            return f"OutOf{name}", message
    return None


def grace_period(pod: Mapping[str, Any], *, deleting: bool = False) -> float:
    """The deletion's grace period when the pod is being deleted, else the spec's (default 30 s)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if deleting and meta.get("deletionGracePeriodSeconds") is not None:
        return float(meta["deletionGracePeriodSeconds"])
    value = spec.get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_SEC if value is None else float(value)


def restart_wanted(policy: str, exit_code: int, *, init: bool) -> bool:
    """Whether a container that exited with `exit_code` runs again under `policy`."""
    if init:  # an init container that succeeded is done; one that failed retries unless Never
        return exit_code != 0 and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


async def volumes_ready(pod: Mapping[str, Any], root: Path, *,
                        sources: tuple[Mapping[str, Any], Mapping[str, Any]], facts: PodFacts,
                        tokens: TokenCache) -> dict[str, Path]:
    """Write every volume of `pod` under `root` (tokens from `tokens`); the host directory of each.

    Raises LaunchError(ContainerCreating) when a volume cannot be set up yet.
    """
    configmaps, secrets = sources
    plans = plan_volumes(pod, configmaps=configmaps, secrets=secrets, facts=facts)
    dirs: dict[str, Path] = {}
    for name, plan in plans.items():
        if plan.kind == "hostPath" and plan.host_path is not None:
            check_host_path(plan.host_path, plan.host_path_type)
            dirs[name] = plan.host_path
            continue
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        if plan.kind == "files":
            files = {item.path: (item.content, item.mode) for item in plan.files}
            for item in plan.tokens:
                token = await tokens.get(pod, item)
                files[item.path] = (token.value.encode(), item.mode)
            write_files(directory, files)
        dirs[name] = directory
    return dirs



KUBERNETES_NAMES: Final = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                           "kubernetes.default.svc.cluster.local")


def hosts_file(pod: Mapping[str, Any], *, pod_ip: str, api_host: str) -> str:
    """The pod's /etc/hosts as the kubelet manages it (hostname, hostAliases), plus the API server.

    The local fleet has no cluster DNS: the `kubernetes` Service's names lead to the API server's
    address, so in-cluster clients that use `https://kubernetes.default.svc` (kopf does) find it.
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    hostname = str(spec.get("hostname") or meta.get("name") or "")
    if spec.get("subdomain"):
        hostname = f"{hostname}.{spec['subdomain']}.{meta.get('namespace')}.svc.cluster.local\t{hostname}"
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters", f"{pod_ip}\t{hostname}"]
    aliases = spec.get("hostAliases") or ()
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += [f"{a['ip']}\t{' '.join(a.get('hostnames') or ())}" for a in aliases]
    try:
        ipaddress.ip_address(api_host)
    except ValueError:
        return "\n".join(lines) + "\n"  # a name: the host's resolver knows it
    lines += ["", "# No cluster DNS in the local fleet: the kubernetes Service's names lead to the API server.",
              f"{api_host}\t{' '.join(KUBERNETES_NAMES)}"]
    return "\n".join(lines) + "\n"

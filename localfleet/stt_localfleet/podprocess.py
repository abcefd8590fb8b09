"""One local container: plan its process from the pod spec (pure), then run and stop it.

`plan_container` resolves a container into a `LaunchSpec`: the image's program (images.py), its
`command`/`args` with `$(VAR)` expansion, the environment (image ENV, the `kubernetes` Service's
variables, `envFrom`, `env`), and bind mounts of the pod's volume directories at each
`mountPath` (with `subPath`/`subPathExpr` and `readOnly`). `stt-server` additionally binds the
pod's own loopback address: the kubelet appends `--grpc-host/--http-host` and the ports of the
container ports named `grpc`/`http`, since there is no network namespace. `ContainerProcess`
starts a plan through the mount-namespace launcher and stops it as the runtime does: SIGTERM to
the main process, SIGKILL to the whole process group after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from stt_localfleet.envvars import PodFacts, expand, expand_all, resolve_env
from stt_localfleet.images import LocalImage
from stt_localfleet.launcher import LaunchSpec, Mount, hidden_paths, spawn
from stt_localfleet.launcherrors import CONFIG_ERROR, LaunchError

DEFAULT_GRPC_PORT: Final = 50051
DEFAULT_HTTP_PORT: Final = 8000


def named_port(container: Mapping[str, Any], name: str, default: int) -> int:
    for port in container.get("ports") or ():
        if port.get("name") == name and port.get("containerPort"):
            return int(port["containerPort"])
    return default


def container_argv(container: Mapping[str, Any], image: LocalImage, env: Mapping[str, str], *,
                   address: str) -> list[str]:
    """`command` (else the image's entrypoint) + `args`, expanded; stt-server bound to `address`."""
    command = expand_all(container.get("command") or (), env) or list(image.entrypoint)
    args = expand_all(container.get("args") or (), env)
    if command[0] == image.program:  # the image's program by name: this host's copy of it
        command[0] = image.entrypoint[0]
    argv = [*command, *args]
    if image.program == "stt-server" and argv[0] == image.entrypoint[0]:
        # Pods share the cluster network: the server binds only its own pod IP.
        argv += ["--grpc-host", address, "--http-host", address, "--rest-host", address,
                 "--grpc-port", str(named_port(container, "grpc", DEFAULT_GRPC_PORT)),
                 "--http-port", str(named_port(container, "http", DEFAULT_HTTP_PORT))]
        rest = named_port(container, "rest", 0)
        if rest:  # else the config decides (the operator's ConfigMap says 0 when restPort is 0)
            argv += ["--rest-port", str(rest)]
    return argv


def container_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, Path],
                     env: Mapping[str, str]) -> tuple[Mount, ...]:
    """The container's volumeMounts as bind mounts of the volumes' host directories."""
    mounts = []
    for mount in container.get("volumeMounts") or ():
        base = volume_dirs.get(mount["name"])
        if base is None:
            raise LaunchError(CONFIG_ERROR, f'volumeMount "{mount["name"]}" names no volume of the pod')
        sub = mount.get("subPath") or (expand(mount["subPathExpr"], env.get) if mount.get("subPathExpr") else "")
        if sub.startswith("/") or ".." in Path(sub).parts:
            raise LaunchError(CONFIG_ERROR, f"subPath {sub!r} must be a relative path inside the volume")
        mounts.append(Mount(source=base / sub if sub else base, target=str(mount["mountPath"]),
                            read_only=bool(mount.get("readOnly"))))
    return tuple(mounts)


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    image: LocalImage
    launch: LaunchSpec


def plan_container(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    image: LocalImage,
    facts: PodFacts,
    service_env: Mapping[str, str],
    configmaps: Mapping[str, Mapping[str, Any] | None],
    secrets: Mapping[str, Mapping[str, Any] | None],
    volume_dirs: Mapping[str, Path],
    image_paths: tuple[Path, ...],
    etc_hosts: Path | None = None,
) -> ContainerPlan:
    """Everything needed to start `container` of `pod` (raises LaunchError when it cannot start yet).

    `etc_hosts`, the kubelet-managed hosts file, is mounted at /etc/hosts unless the container
    mounts something there itself.
    """
    meta = pod.get("metadata") or {}
    base = {**image.env, "HOSTNAME": str((pod.get("spec") or {}).get("hostname") or meta.get("name", "")),
            "HOME": "/root", **service_env}
    env = resolve_env(pod, container, base=base, configmaps=configmaps, secrets=secrets, facts=facts)
    argv = container_argv(container, image, env, address=facts.pod_ip)
    mounts = container_mounts(container, volume_dirs, env)
    if etc_hosts is not None and not any(m.target == "/etc/hosts" for m in mounts):
        mounts = (Mount(etc_hosts, "/etc/hosts", read_only=True), *mounts)
    launch = LaunchSpec(argv=tuple(argv), env=env, mounts=mounts, cwd=str(container.get("workingDir") or "/"),
                        reexpose=hidden_paths(image_paths, (m.target for m in mounts)))
    return ContainerPlan(name=str(container["name"]), image=image, launch=launch)


class ContainerProcess:
    """A started container: its pid, exit status, and the runtime's stop sequence."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid

    @classmethod
    async def start(cls, launch: LaunchSpec, *, log: IO[bytes]) -> ContainerProcess:
        """Create missing subPath sources (as the kubelet does), then launch; LaunchError on failure."""
        for mount in launch.mounts:
            if not mount.source.exists():
                mount.source.mkdir(parents=True, exist_ok=True)
        return cls(await spawn(launch, stdout=log, stderr=log))

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self) -> int:
        code = await self.process.wait()
        self._kill_group()  # what the main process left behind goes with it, as in a container
        return code

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    async def stop(self, grace_sec: float) -> int:
        """SIGTERM, then SIGKILL (to the whole group) once `grace_sec` is over; the exit status."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(max(grace_sec, 0.0)):
                    await self.process.wait()
            except TimeoutError:
                self._kill_group()
        return await self.wait()

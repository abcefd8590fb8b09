"""One local "container": turn a pod template into an `stt-server` process on its own loopback address.

`plan_launch` is pure: it resolves the container's command, args, env (`value`, `secretKeyRef`,
`configMapKeyRef`, `fieldRef`, `envFrom`) and volumes (ConfigMap, Secret, emptyDir) into a
`LaunchPlan` whose files live under the pod's work directory; mount paths in args and env are
rewritten to those files. `PodProcess` runs a plan and stops it the way the kubelet does: SIGTERM,
then SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from stt_localfleet.spawn import tied_to_parent

DEFAULT_GRACE_SEC: Final = 30.0
INHERITED_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


class LaunchError(Exception):
    """The pod cannot start; `reason` is the kubelet's waiting reason (CreateContainerConfigError...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LaunchPlan:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    files: Mapping[Path, bytes]
    dirs: tuple[Path, ...]
    cwd: Path
    grpc_port: int
    http_port: int
    grace_sec: float
    ignored: tuple[str, ...] = field(default=())  # what the template asked for that is not emulated


def _port(container: Mapping[str, Any], name: str, default: int) -> int:
    for port in container.get("ports") or ():
        if port.get("name") == name and port.get("containerPort"):
            return int(port["containerPort"])
    return default


def server_executable() -> str:
    """The `stt-server` next to this interpreter (the local stand-in for the image's entrypoint)."""
    candidate = Path(sys.executable).with_name("stt-server")
    return str(candidate) if candidate.exists() else "stt-server"


def _decoded(secret: Mapping[str, Any]) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def _source(kind: str, name: str, store: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    obj = store.get(name)
    if obj is None:
        raise LaunchError("CreateContainerConfigError", f'{kind} "{name}" not found')
    if kind == "secret":
        return _decoded(obj)
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def plan_launch(
    pod: Mapping[str, Any],
    *,
    address: str,
    workdir: Path,
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    executable: str | None = None,
) -> LaunchPlan:
    """Resolve the first container of `pod` into a local process launch on `address`."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    containers = spec.get("containers") or []
    if not containers:
        raise LaunchError("CreateContainerConfigError", "pod has no containers")
    container = containers[0]
    ignored = [f"container {c.get('name')}" for c in containers[1:]]
    ignored += [f"initContainer {c.get('name')}" for c in spec.get("initContainers") or ()]

    # Volumes -> directories (or files) under the work dir.
    files: dict[Path, bytes] = {}
    dirs: list[Path] = []
    volume_dirs: dict[str, Path] = {}
    for volume in spec.get("volumes") or ():
        vdir = workdir / "volumes" / volume["name"]
        volume_dirs[volume["name"]] = vdir
        dirs.append(vdir)
        if "configMap" in volume or "secret" in volume:
            kind = "configMap" if "configMap" in volume else "secret"
            ref = volume[kind]
            name = ref.get("name") or ref.get("secretName", "")
            try:
                data = _source("secret" if kind == "secret" else "configmap", name,
                               secrets if kind == "secret" else configmaps)
            except LaunchError:
                if ref.get("optional"):
                    continue
                raise
            items = ref.get("items")
            chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
            for key, rel in chosen.items():
                if key in data:
                    files[vdir / rel] = data[key]
        elif "hostPath" in volume:
            volume_dirs[volume["name"]] = Path(volume["hostPath"]["path"])
            dirs.pop()
        elif "emptyDir" not in volume:
            ignored.append(f"volume {volume['name']} ({', '.join(k for k in volume if k != 'name')})")
    mounts: list[tuple[str, Path]] = []
    for mount in container.get("volumeMounts") or ():
        base = volume_dirs.get(mount["name"])
        if base is None:
            continue
        mounts.append((mount["mountPath"].rstrip("/"), base / mount["subPath"] if mount.get("subPath") else base))
    mounts.sort(key=lambda m: len(m[0]), reverse=True)  # the most specific mount wins

    def local(value: str) -> str:
        for mount_path, target in mounts:
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(target) + value[len(mount_path):]
            if "=" in value and value.split("=", 1)[1].startswith(mount_path):  # --flag=/mounted/path
                flag, path = value.split("=", 1)
                return f"{flag}={local(path)}"
        return value

    # Environment, as the container would see it (plus a few host basics the process needs to run).
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    field_values = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
                    "status.podIP": address, "spec.nodeName": "localfleet", "status.hostIP": "127.0.0.1"}
    for source in container.get("envFrom") or ():
        prefix = source.get("prefix", "")
        for kind, store in (("secretRef", secrets), ("configMapRef", configmaps)):
            if kind in source:
                try:
                    data = _source("secret" if kind == "secretRef" else "configmap", source[kind]["name"], store)
                except LaunchError:
                    if source[kind].get("optional"):
                        continue
                    raise
                env.update({prefix + k: v.decode() for k, v in data.items()})
    for item in container.get("env") or ():
        name, value_from = item["name"], item.get("valueFrom")
        if value_from is None:
            env[name] = local(str(item.get("value", "")))
            continue
        for kind, store in (("secretKeyRef", secrets), ("configMapKeyRef", configmaps)):
            if kind in value_from:
                ref = value_from[kind]
                try:
                    data = _source("secret" if kind == "secretKeyRef" else "configmap", ref["name"], store)
                    if ref["key"] not in data:
                        raise LaunchError("CreateContainerConfigError",
                                          f'couldn\'t find key {ref["key"]} in {kind[:-6]} "{ref["name"]}"')
                except LaunchError:
                    if ref.get("optional"):
                        break
                    raise
                env[name] = data[ref["key"]].decode()
        if "fieldRef" in value_from:
            env[name] = field_values.get(value_from["fieldRef"]["fieldPath"], "")

    grpc_port = _port(container, "grpc", 50051)
    http_port = _port(container, "http", 8000)
    argv = [local(str(a)) for a in (*(container.get("command") or ["stt-server"]), *(container.get("args") or ()))]
    if Path(argv[0]).name == "stt-server":
        # The image's server is this host's: its path is not inside the container, so no mount
        # applies to it (a checkout under /tmp would otherwise land in the /tmp emptyDir).
        argv[0] = executable or server_executable()
    # The pod's network namespace, emulated: the server binds only its own loopback address.
    argv += ["--grpc-host", address, "--http-host", address,
             "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    grace = spec.get("terminationGracePeriodSeconds")
    return LaunchPlan(
        argv=tuple(argv), env=env, files=files, dirs=tuple(dirs), cwd=workdir, grpc_port=grpc_port,
        http_port=http_port, grace_sec=float(DEFAULT_GRACE_SEC if grace is None else grace),
        ignored=tuple(ignored),
    )




class PodProcess:
    """A running plan. `terminate()` is SIGTERM, a grace period, then SIGKILL."""

    def __init__(self, plan: LaunchPlan, *, log_path: Path) -> None:
        self.plan = plan
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        for directory in (*self.plan.dirs, self.plan.cwd):
            directory.mkdir(parents=True, exist_ok=True)
        for path, content in self.plan.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        with self.log_path.open("ab") as log:
            # Dies with the kubelet: no orphaned servers holding ports or CPU.
            self.process = await asyncio.create_subprocess_exec(
                *tied_to_parent(self.plan.argv, path=self.plan.env.get("PATH")), cwd=self.plan.cwd,
                env=dict(self.plan.env), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.returncode is not None

    async def terminate(self, grace_sec: float | None = None) -> int | None:
        """Stop the process; returns its exit code (negative: killed by that signal)."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc else None
        grace = self.plan.grace_sec if grace_sec is None else grace_sec
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            return await proc.wait()

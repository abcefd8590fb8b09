"""The local fleet: API server, kubelet, NodePort proxy and the real operator, as separate processes.

`LocalFleet` is an async context manager. On enter it starts, in order, the local API server
(`localfleet.apiserver`, which installs the CRDs and writes a kubeconfig), the kubelet, the NodePort
proxy and `stt-operator run --standalone`; on exit (also on errors and Ctrl-C) it stops them in
reverse order with SIGTERM, waits, and SIGKILLs stragglers, so that no process outlives it. The
kubelet stops its server pods itself, each with its grace period. Logs go to `<workdir>/<name>.log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import aiohttp

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, credentials_from_kubeconfig, resource_path
from stt_localfleet.spawn import tied_to_parent

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CRDS_DIR: Final = REPO_ROOT / "crds"
STOP_TIMEOUT_SEC: Final = 10.0

# kind -> (apiVersion, plural, namespaced) for what manifests may hold.
KINDS: Final[Mapping[str, tuple[str, str, bool]]] = {
    "Namespace": ("v1", "namespaces", False),
    "Secret": ("v1", "secrets", True),
    "ConfigMap": ("v1", "configmaps", True),
    "SttServer": ("sttfleet.io/v1alpha1", "sttservers", True),
}


class FleetError(RuntimeError):
    """A fleet process failed to start; the message names it and points at its log."""




class LocalFleet:
    """Start the whole local cluster and the operator; `api` talks to it once entered."""

    def __init__(self, *, namespace: str = "stt", workdir: Path | None = None, crds: Path = CRDS_DIR,
                 operator_cmd: Sequence[str] | None = None, kubelet_resync_sec: float = 0.5) -> None:
        self.namespace = namespace
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="stt-localfleet-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.crds = crds
        bin_dir = Path(sys.executable).parent
        self.operator_cmd = list(operator_cmd or [str(bin_dir / "stt-operator"), "run", "--standalone",
                                                  "--namespace", namespace])
        self.kubelet_resync_sec = kubelet_resync_sec
        self.kubeconfig = self.workdir / "kubeconfig"
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._api: KubeApi | None = None
        self.started_at = 0.0

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            raise RuntimeError("LocalFleet used outside 'async with'")
        return self._api

    @property
    def operator_pid(self) -> int | None:
        proc = self.processes.get("operator")
        return proc.pid if proc else None

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}

    async def _spawn(self, name: str, argv: Sequence[str]) -> asyncio.subprocess.Process:
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            env = self.env()
            proc = await asyncio.create_subprocess_exec(
                *tied_to_parent(argv, path=env.get("PATH")), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
        except FileNotFoundError as exc:
            raise FleetError(f"cannot start {name}: {argv[0]} not found") from exc
        finally:
            log.close()
        self.processes[name] = proc
        return proc

    async def __aenter__(self) -> Self:
        self.started_at = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            py = sys.executable
            await self._spawn("apiserver", [py, "-m", "stt_localfleet.apiserver", "--kubeconfig",
                                            str(self.kubeconfig), "--crds", str(self.crds),
                                            "--namespace", self.namespace])
            await self._wait_for_file(self.kubeconfig, "apiserver")
            self._api = KubeApi(credentials_from_kubeconfig(self.kubeconfig))
            await self._api.__aenter__()
            await self._wait_for_api()
            await self._spawn("kubelet", [py, "-m", "stt_localfleet.kubelet", "--workdir",
                                          str(self.workdir / "pods"), "--resync", str(self.kubelet_resync_sec)])
            await self._spawn("nodeport", [py, "-m", "stt_localfleet.nodeport"])
            await self._spawn("operator", self.operator_cmd)
            await asyncio.sleep(0.5)
            self.check_alive()
        except BaseException:
            await self.stop(keep_logs=True)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        # After a failure the logs are what a person needs: keep a temporary work dir then.
        await self.stop(keep_logs=exc is not None)

    def check_alive(self) -> None:
        """Raise FleetError naming any fleet process that has exited, with its log's tail."""
        for name, proc in self.processes.items():
            if proc.returncode is not None:
                raise FleetError(f"{name} exited with code {proc.returncode}; last log lines:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    async def _wait_for_file(self, path: Path, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise FleetError(f"{name} did not come up within {timeout:g} s:\n{self.log_tail(name)}")
            await asyncio.sleep(0.05)

    async def _wait_for_api(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.api.list(resource_path("v1", "namespaces"))
                return
            except (ApiError, OSError, aiohttp.ClientError, ValueError) as exc:  # not up yet
                self.check_alive()
                if time.monotonic() > deadline:
                    raise FleetError(f"API server not answering: {exc}") from exc
                await asyncio.sleep(0.1)

    async def stop(self, *, keep_logs: bool = False) -> None:
        """Stop every process, newest first; the kubelet gets time to drain its pods."""
        if self._api is not None:
            with contextlib.suppress(Exception):
                await self._api.__aexit__(None, None, None)
            self._api = None
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            # The kubelet waits out its pods' grace periods before it exits.
            timeout = STOP_TIMEOUT_SEC * (4 if name == "kubelet" else 1)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._tmp is not None and not keep_logs:
            self._tmp.cleanup()
        elif self._tmp is not None:
            self._tmp._finalizer.detach()  # type: ignore[attr-defined]  # keep it past interpreter exit

    async def apply(self, manifests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create each object (or merge-patch it when it exists), in the fleet's namespace by default."""
        out = []
        for manifest in manifests:
            kind = manifest.get("kind", "")
            if kind not in KINDS:
                raise FleetError(f"apply: kind {kind!r} is not one the demo applies ({', '.join(KINDS)})")
            api_version, plural, namespaced = KINDS[kind]
            namespace = (manifest.get("metadata") or {}).get("namespace") or self.namespace if namespaced else None
            body = {**manifest, "metadata": {**manifest.get("metadata", {}),
                                             **({"namespace": namespace} if namespace else {})}}
            name = body["metadata"]["name"]
            existing = await self.api.get_or_none(resource_path(api_version, plural, namespace=namespace, name=name))
            if existing is None:
                out.append(await self.api.create(resource_path(api_version, plural, namespace=namespace), body))
            else:
                out.append(await self.api.merge_patch(
                    resource_path(api_version, plural, namespace=namespace, name=name),
                    {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")}))
        return out


def event_lines(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """`kubectl get events`-style lines (core/v1 or events.k8s.io/v1), oldest first."""
    rows = []
    for ev in events:
        obj = ev.get("involvedObject") or ev.get("regarding") or {}
        stamp = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or \
            (ev.get("metadata") or {}).get("creationTimestamp") or ""
        line = (f"{stamp[11:19] if len(stamp) >= 19 else stamp:8}  {ev.get('type', ''):7}  "
                f"{ev.get('reason', ''):24}  {obj.get('kind', '')}/{obj.get('name', '')}  "
                f"{ev.get('message') or ev.get('note', '')}")
        rows.append((str(stamp), line))
    return [line for _, line in sorted(rows)]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)

"""The local fleet: the real control plane, the process kubelet as node `localfleet`, and the NodePort proxy.

`LocalFleet` is an async context manager. On enter it makes the cluster network (`podnet`: a
network namespace of its own where pods get 10.244.0.x), starts the `ControlPlane` (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler) inside it, then the NodePort proxy on the
host (it also forwards the API server's port to the host's 127.0.0.1) and the kubelet inside the
network, waits until Node `localfleet` is Ready and only then writes the admin kubeconfig to
`<workdir>/kubeconfig`, so that a file there means a usable cluster. On exit (also on
errors and Ctrl-C) it stops them newest first: the kubelet stops its pods with their grace
periods, and every process is tied to its parent's life (`spawn.tied_to_parent`).

`kubectl` and `helm` (from `binaries.bin_dir()`) are run against it with `fleet.kubectl(...)` and
`fleet.helm(...)`; `fleet.api` is a thin async client with admin rights.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, credentials_from_kubeconfig, resource_path

from stt_localfleet import binaries, podnet
from stt_localfleet.controlplane import NODE_NAME, ControlPlane, ControlPlaneError
from stt_localfleet.spawn import stop_process, tied_to_parent

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CRDS_DIR: Final = REPO_ROOT / "crds"
CHART_DIR: Final = REPO_ROOT / "charts" / "stt-operator"
STOP_TIMEOUT_SEC: Final = 10.0
KUBELET_STOP_TIMEOUT_SEC: Final = 60.0  # it waits out its pods' grace periods first


class FleetError(RuntimeError):
    """A fleet process failed to start or a wait ran out; the message names it and quotes its log."""


class LocalFleet:
    """The whole one-machine cluster; `api`, `kubectl()` and `helm()` talk to it once entered."""

    def __init__(self, *, workdir: Path | None = None, audit: bool = False, backoff_scale: float = 1.0) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="stt-localfleet-")
        self.workdir = (workdir or Path(self._tmp.name)).resolve()  # type: ignore[union-attr]
        self.control_plane = ControlPlane(workdir=self.workdir, audit=audit)
        self.backoff_scale = backoff_scale
        self.kubeconfig = self.workdir / "kubeconfig"
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._network: asyncio.subprocess.Process | None = None
        self._api: KubeApi | None = None
        self.started_at = 0.0

    @property
    def netns(self) -> Path:
        """The cluster network's namespace file (valid while the fleet runs)."""
        if self._network is None:
            raise RuntimeError("LocalFleet used outside 'async with'")
        return Path(f"/proc/{self._network.pid}/ns/net")

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            raise RuntimeError("LocalFleet used outside 'async with'")
        return self._api

    @property
    def bin_dir(self) -> Path:
        return self.control_plane.bin_dir

    def env(self) -> dict[str, str]:
        """The environment for kubectl, helm and our own clients: the admin kubeconfig, the bin folder first."""
        return {**os.environ, "KUBECONFIG": str(self.control_plane.admin_kubeconfig), "PYTHONUNBUFFERED": "1",
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "HELM_CACHE_HOME": str(self.workdir / "helm" / "cache"),
                "HELM_CONFIG_HOME": str(self.workdir / "helm" / "config"),
                "HELM_DATA_HOME": str(self.workdir / "helm" / "data")}

    async def __aenter__(self) -> Self:
        self.started_at = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        try:
            await self._make_network()
            self.control_plane.netns = self.netns
            await self.control_plane.start()
            py = sys.executable
            port = self.control_plane.port
            await self._spawn("nodeport", [py, "-m", "stt_localfleet.nodeport", "--netns", str(self.netns),
                                           "--forward", str(port),
                                           "--kubeconfig", str(self.control_plane.admin_kubeconfig)])
            self._api = KubeApi(credentials_from_kubeconfig(self.control_plane.admin_kubeconfig))
            await self._api.__aenter__()
            await self._spawn("kubelet", [
                py, "-m", "stt_localfleet.kubelet", "--kubeconfig", str(self.control_plane.kubelet_kubeconfig),
                "--api-server", f"https://{podnet.NODE_IP}:{port}", "--workdir", str(self.workdir / "pods"),
                "--node-name", NODE_NAME, "--backoff-scale", str(self.backoff_scale)], inside=True)
            await self._wait_node_ready()
            shutil.copyfile(self.control_plane.admin_kubeconfig, self.kubeconfig.with_suffix(".partial"))
            self.kubeconfig.with_suffix(".partial").replace(self.kubeconfig)
        except BaseException:
            await self.stop(keep_logs=True)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        # After a failure the logs are what a person needs: keep a temporary work dir then.
        await self.stop(keep_logs=exc is not None)

    async def _make_network(self, timeout: float = 10.0) -> None:
        self.control_plane.logs.mkdir(parents=True, exist_ok=True)
        try:
            argv = podnet.holder_command()
        except podnet.PodNetworkError as exc:
            raise FleetError(str(exc)) from exc
        with (self.control_plane.logs / "podnet.log").open("ab") as log:
            self._network = await asyncio.create_subprocess_exec(
                *tied_to_parent(argv), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=log, start_new_session=True)
        assert self._network.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await self._network.stdout.readline()
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            raise FleetError("could not make the cluster network (unshare --net and ip need root): "
                             f"{self.log_tail('podnet')}")
        (self.workdir / "podnet.pid").write_text(f"{self._network.pid}\n")

    async def _spawn(self, name: str, argv: Sequence[str], *, inside: bool = False) -> None:
        """Start a fleet process on the host, or `inside` the cluster network."""
        log_path = self.control_plane.logs / f"{name}.log"
        with log_path.open("ab") as log:
            env = self.env()
            command = tied_to_parent(argv, path=env.get("PATH"))
            self.processes[name] = await asyncio.create_subprocess_exec(
                *(podnet.enter_command(self.netns, command) if inside else command), env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def check_alive(self) -> None:
        """Raise FleetError naming any fleet process that has exited, with its log's tail."""
        try:
            self.control_plane.check_alive()
        except ControlPlaneError as exc:
            raise FleetError(str(exc)) from exc
        for name, proc in self.processes.items():
            if proc.returncode is not None:
                raise FleetError(f"{name} exited with code {proc.returncode}; its log ends:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        return self.control_plane.log_tail(name, lines)

    async def _wait_node_ready(self, timeout: float = 60.0) -> None:
        path = resource_path("v1", "nodes", name=NODE_NAME)
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            # Until the proxy forwards the API port, the host's connection is refused: not an error.
            with contextlib.suppress(ApiError, aiohttp.ClientError, OSError):
                node = await self.api.get(path)
                if any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (node.get("status") or {}).get("conditions") or ()):
                    return
            if time.monotonic() > deadline:
                raise FleetError(f"node {NODE_NAME} not Ready within {timeout:g} s; the kubelet's log ends:\n"
                                 f"{self.log_tail('kubelet')}")
            await asyncio.sleep(0.1)

    async def stop(self, *, keep_logs: bool = False) -> None:
        """Stop the node's processes (the kubelet drains its pods), then the control plane."""
        if self._api is not None:
            with contextlib.suppress(Exception):
                await self._api.__aexit__(None, None, None)
            self._api = None
        self.kubeconfig.unlink(missing_ok=True)
        for name in reversed(list(self.processes)):
            await stop_process(self.processes[name],
                               timeout=KUBELET_STOP_TIMEOUT_SEC if name == "kubelet" else STOP_TIMEOUT_SEC)
        self.processes.clear()
        await self.control_plane.stop()
        if self._network is not None:
            await stop_process(self._network, timeout=STOP_TIMEOUT_SEC)
        (self.workdir / "podnet.pid").unlink(missing_ok=True)
        if self._tmp is not None and not keep_logs:
            self._tmp.cleanup()
        elif self._tmp is not None:
            self._tmp._finalizer.detach()  # type: ignore[attr-defined]  # keep it past interpreter exit

    # The real tools against this cluster.
    async def run_tool(self, tool: str, *args: str, check: bool = True, stdin: str | None = None,
                       timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run `kubectl` or `helm` with the admin kubeconfig; FleetError with its output when it fails."""
        return await run_tool(binaries.tool(tool), args, env=self.env(), check=check, stdin=stdin, timeout=timeout)

    async def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                      timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return await self.run_tool("kubectl", *args, check=check, stdin=stdin, timeout=timeout)

    async def helm(self, *args: str, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return await self.run_tool("helm", *args, check=check, timeout=timeout)

    async def kubectl_json(self, *args: str) -> Any:
        return json.loads((await self.kubectl(*args, "-o", "json")).stdout)


async def run_tool(path: Path, args: Sequence[str], *, env: Mapping[str, str], check: bool = True,
                   stdin: str | None = None, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """Run one of the Go-built tools; its output is returned (and quoted in FleetError on failure)."""
    proc = await asyncio.create_subprocess_exec(
        str(path), *args, env=dict(env), stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise FleetError(f"{path.name} {' '.join(args)} did not finish within {timeout:g} s") from None
    result = subprocess.CompletedProcess([path.name, *args], proc.returncode or 0, out.decode(), err.decode())
    if check and result.returncode != 0:
        raise FleetError(f"{path.name} {' '.join(args)} failed with exit code {result.returncode}:\n"
                         f"{result.stderr.strip() or result.stdout.strip()}")
    return result

"""The real `stt-operator` process against the session cluster, one namespace per test.

The cluster is the real control plane (kube-apiserver, the deployment, replicaset and garbage
collector controllers, the scheduler) plus the process kubelet, which runs the pods bound to it
as real `stt-server` processes. Each test gets a namespace of its own and its own operator process
(`stt-operator run --standalone --namespace NS`, admin kubeconfig); `Cluster` reads through the
operator's own thin API client and changes things the way a person would, with `kubectl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import pathlib
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import yaml
from local_cluster import LocalCluster
from stt_operator.autoscaling.kubeapi import KubeApi, resource_path

REPO: Final = pathlib.Path(__file__).resolve().parents[3]
SAMPLES: Final = tuple(pathlib.Path(p) for p in os.environ.get("STT_TEST_SAMPLE_DIRS", "").split(os.pathsep) if p) \
    or (REPO / "crds" / "samples", REPO / "samples", REPO / "crds")
PROMETHEUS_CRDS: Final = REPO / "tests" / "schemas" / "prometheus-operator"  # vendored, v0.93.0
RESYNC_SEC: Final = 2
RESYNC_LOG_LINE: Final = "resync round:"  # stt_operator.resync.RESYNC_LOG_LINE, logged once per round
# More CPU than any node has: the scheduler leaves such pods Pending, so no process is started.
UNPLACEABLE_CPU: Final = "500"
T = TypeVar("T")

# kind -> (apiVersion, plural, kubectl resource name)
KINDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "SttServer": ("sttfleet.io/v1alpha1", "sttservers", "sttservers.sttfleet.io"),
    "ConfigMap": ("v1", "configmaps", "configmaps"),
    "Service": ("v1", "services", "services"),
    "Deployment": ("apps/v1", "deployments", "deployments.apps"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", "poddisruptionbudgets.policy"),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors", "servicemonitors.monitoring.coreos.com"),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules", "prometheusrules.monitoring.coreos.com"),
    "AlertmanagerConfig": ("monitoring.coreos.com/v1alpha1", "alertmanagerconfigs",
                           "alertmanagerconfigs.monitoring.coreos.com"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", "networkpolicies.networking.k8s.io"),
    "Pod": ("v1", "pods", "pods"),
    "Event": ("v1", "events", "events"),
}


def load_sample(keyword: str) -> dict[str, Any]:
    """The first SttServer sample whose file name contains `keyword` (e.g. "minimal", "gpu")."""
    for folder in SAMPLES:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            if keyword in path.name:
                for doc in yaml.safe_load_all(path.read_text()):
                    if isinstance(doc, dict) and doc.get("kind") == "SttServer":
                        return doc
    raise FileNotFoundError(f"no SttServer sample named *{keyword}* under {SAMPLES}")


def unplaceable(sample: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """The sample asking for more CPU than the node has: its pods stay Pending and start no process.

    For tests about the objects the operator writes, where running `stt-server` would only cost time.
    """
    server = copy.deepcopy(dict(sample))
    server["spec"]["resources"] = {"requests": {"cpu": UNPLACEABLE_CPU}}
    if name is not None:
        server["metadata"]["name"] = name
    return server


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, what: str, timeout: float = 20.0) -> T:
    """Await `probe` until it returns something truthy; fail with `what` and the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last value: {last!r}")


class Cluster:
    """One test's namespace: reads through `KubeApi`, changes through `kubectl`."""

    def __init__(self, local: LocalCluster, api: KubeApi, namespace: str) -> None:
        self.local = local
        self.api = api
        self.namespace = namespace
        self.operator_log: pathlib.Path | None = None

    def path(self, kind: str, name: str | None = None, *, subresource: str | None = None) -> str:
        api_version, plural, _ = KINDS[kind]
        return resource_path(api_version, plural, namespace=self.namespace, name=name, subresource=subresource)

    async def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return await self.api.get_or_none(self.path(kind, name))

    async def items(self, kind: str, *, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return await self.api.list(self.path(kind), labels=labels)

    async def status(self, name: str) -> dict[str, Any]:
        return ((await self.get("SttServer", name)) or {}).get("status") or {}

    async def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in (await self.status(name)).get("conditions") or () if c["type"] == type_), None)

    async def wait_condition(self, name: str, type_: str, status: str, *, timeout: float = 20.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            cond = await self.condition(name, type_)
            return cond if cond and cond["status"] == status else None
        return await wait_for(probe, what=f"{type_}={status} on SttServer {name}", timeout=timeout)

    async def wait_object(self, kind: str, name: str, until: Callable[[dict[str, Any]], Any] = bool, *,
                          what: str = "", timeout: float = 20.0) -> dict[str, Any]:
        """The object once it exists and `until(obj)` holds."""
        async def probe() -> dict[str, Any] | None:
            obj = await self.get(kind, name)
            return obj if obj is not None and until(obj) else None
        return await wait_for(probe, what=what or f"{kind} {name}", timeout=timeout)

    async def wait_gone(self, kind: str, name: str, *, timeout: float = 30.0) -> None:
        async def gone() -> bool:
            return await self.get(kind, name) is None
        await wait_for(gone, what=f"{kind} {name} to go", timeout=timeout)

    # Changes, as a person makes them.
    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.local.kubectl(*args, "-n", self.namespace, stdin=stdin).stdout

    def apply(self, manifest: Mapping[str, Any]) -> None:
        doc = copy.deepcopy(dict(manifest))
        doc["metadata"] = {**doc.get("metadata", {}), "namespace": self.namespace}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(doc))

    def patch(self, kind: str, name: str, patch: Mapping[str, Any]) -> None:
        self.kubectl("patch", KINDS[kind][2], name, "--type", "merge", "-p", json.dumps(patch))

    def delete(self, kind: str, name: str) -> None:
        self.kubectl("delete", KINDS[kind][2], name, "--timeout=60s")

    # Events
    async def events_for(self, name: str) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in await self.items("Event")
                if (e.get("involvedObject") or {}).get("name") == name]

    async def wait_for_event(self, name: str, type_: str, reason: str, *, timeout: float = 20.0) -> None:
        """Events are posted just after the change they describe: wait for one rather than assume it."""
        async def seen() -> bool:
            return (type_, reason) in {(t, r) for t, r, _ in await self.events_for(name)}
        await wait_for(seen, what=f"a {type_} {reason} Event for {name}", timeout=timeout)

    async def release_servers(self) -> None:
        """Drop kopf's finalizers from SttServers left behind, so the namespace can be deleted without an operator."""
        for server in await self.items("SttServer"):
            if server["metadata"].get("finalizers"):
                await self.api.merge_patch(self.path("SttServer", server["metadata"]["name"]),
                                           {"metadata": {"finalizers": None}})

    @contextlib.asynccontextmanager
    async def operator(self, log_path: pathlib.Path) -> AsyncIterator[asyncio.subprocess.Process]:
        """The operator serving this namespace, for the duration of the block."""
        self.operator_log = log_path
        async with running_operator(self.local.kubeconfig, self.namespace, log_path) as proc:
            yield proc

    async def wait_resyncs(self, *, count: int) -> None:
        """Wait until the operator's resync loop has run `count` more rounds (each checks every SttServer).

        Each round asks for a checked pass; the last one may still be running on return.
        """
        log = self.operator_log
        assert log is not None, "no operator runs for this namespace"
        before = log.read_text(errors="replace").count(RESYNC_LOG_LINE)

        async def fired() -> bool:
            return log.read_text(errors="replace").count(RESYNC_LOG_LINE) >= before + count
        await wait_for(fired, what=f"{count} resync passes", timeout=count * RESYNC_SEC + 10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def operator_command() -> list[str]:
    script = pathlib.Path(sys.executable).parent / "stt-operator"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stt_operator"]


@contextlib.asynccontextmanager
async def running_operator(kubeconfig: pathlib.Path, namespace: str,
                           log_path: pathlib.Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `stt-operator run --standalone --namespace NAMESPACE`; wait for its liveness probe; stop it after."""
    port = _free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "STT_OPERATOR_RESYNC_SEC": str(RESYNC_SEC),
           "STT_OPERATOR_WATCH_TIMEOUT_SEC": "20"}
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *operator_command(), "run", "--standalone", "--namespace", namespace,
            "--liveness", f"http://127.0.0.1:{port}/healthz", env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            async def alive() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"stt-operator exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        return resp.status == 200
                return False
            await wait_for(alive, what="stt-operator's liveness probe", timeout=30)
        yield proc
        assert proc.returncode is None, f"stt-operator exited early:\n{log_path.read_text()[-3000:]}"
    finally:
        # pytest shows this captured output only when the test failed.
        print(f"--- stt-operator log (tail) ---\n{log_path.read_text()[-8000:]}")
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()

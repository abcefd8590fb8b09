"""A local cluster plus the real `stt-operator` process, for the operator's integration tests.

The API server runs in the test's event loop (so tests can read and write objects directly and
inject faults); the operator is a subprocess that only sees it over HTTP through a kubeconfig,
exactly as it would see kube-apiserver. The test plays the missing controllers itself, e.g. it
writes a Deployment's status the way the deployment controller and kubelets would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeVar

import aiohttp
import yaml
from stt_localfleet.apiserver import LocalApiServer
from stt_localfleet.resources import ResourceType

REPO: Final = pathlib.Path(__file__).resolve().parents[3]
CRD_DIR: Final = REPO / "crds"
# The SttServer CRD under test (another build of it can be tested by pointing this elsewhere).
CRD_FILE: Final = pathlib.Path(os.environ.get("STT_TEST_STTSERVER_CRD", CRD_DIR / "sttservers.sttfleet.io.yaml"))
SAMPLES: Final = tuple(pathlib.Path(p) for p in os.environ.get("STT_TEST_SAMPLE_DIRS", "").split(os.pathsep) if p) \
    or (REPO / "crds" / "samples", REPO / "samples", REPO / "crds")
PROMETHEUS_CRDS: Final = REPO / "tests" / "schemas" / "prometheus-operator"  # vendored, v0.93.0
NAMESPACE: Final = "test"
T = TypeVar("T")

KINDS: Final = {
    "SttServer": ("sttfleet.io", "v1alpha1", "sttservers"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Service": ("", "v1", "services"),
    "Deployment": ("apps", "v1", "deployments"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "ServiceMonitor": ("monitoring.coreos.com", "v1", "servicemonitors"),
    "PrometheusRule": ("monitoring.coreos.com", "v1", "prometheusrules"),
    "Event": ("", "v1", "events"),
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


class Cluster:
    """kubectl-like helpers over the in-process API server."""

    def __init__(self, server: LocalApiServer) -> None:
        self.server = server

    def rtype(self, kind: str) -> ResourceType:
        return self.server.store.types[KINDS[kind]]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        key = (KINDS[kind], NAMESPACE, name)
        return self.server.store.get(self.rtype(kind), NAMESPACE, name) if key in self.server.store.objects else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        if KINDS[kind] not in self.server.store.types:
            return []
        return list(self.server.store.list(self.rtype(kind), NAMESPACE))

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        manifest = {**manifest, "metadata": {**manifest.get("metadata", {}), "namespace": NAMESPACE}}
        return self.server.apply(manifest)

    def patch(self, kind: str, name: str, patch: dict[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        from stt_localfleet.patching import merge_patch

        old = self.server.store.get(self.rtype(kind), NAMESPACE, name)
        return self.server.store.write_patched(self.rtype(kind), old, merge_patch(old, patch), subresource=subresource)

    def delete(self, kind: str, name: str) -> None:
        self.server.store.delete(self.rtype(kind), NAMESPACE, name)

    def events_for(self, name: str) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.list("Event")
                if (e.get("involvedObject") or {}).get("name") == name]

    async def wait_for_event(self, name: str, type_: str, reason: str) -> None:
        """Events are posted just after the change they describe: wait for one rather than assume it."""
        await wait_for(lambda: (type_, reason) in {(t, r) for t, r, _ in self.events_for(name)},
                       what=f"a {type_} {reason} Event for {name}")

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get("SttServer", name) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == type_), None)

    def play_deployment_controller(self, name: str, *, ready: int | None = None) -> None:
        """Write the status a deployment controller would write once `ready` pods are ready."""
        deployment = self.get("Deployment", name)
        assert deployment is not None, f"Deployment {name} does not exist"
        replicas = deployment["spec"].get("replicas", 1)
        ready = replicas if ready is None else ready
        self.patch("Deployment", name, {"status": {
            "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready}},
            subresource="status")


async def wait_for(probe: Callable[[], T | None], *, what: str, timeout: float = 10.0) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while loop.time() < deadline:
        last = probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def operator_command() -> list[str]:
    script = pathlib.Path(sys.executable).parent / "stt-operator"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stt_operator"]


@contextlib.asynccontextmanager
async def running_operator(kubeconfig: pathlib.Path, log_path: pathlib.Path) -> AsyncIterator[None]:
    """Start `stt-operator run --standalone --namespace test`; wait for its liveness probe."""
    port = _free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "STT_OPERATOR_RESYNC_SEC": "2",
           "STT_OPERATOR_WATCH_TIMEOUT_SEC": "20"}
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *operator_command(), "run", "--standalone", "--namespace", NAMESPACE,
            "--liveness", f"http://127.0.0.1:{port}/healthz", env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
        try:
            async with aiohttp.ClientSession() as session:
                async def alive() -> bool:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                            return resp.status == 200
                    return False
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while not await alive():
                    if proc.returncode is not None or loop.time() > deadline:
                        raise AssertionError(f"stt-operator did not start:\n{log_path.read_text()[-3000:]}")
                    await asyncio.sleep(0.1)
            yield
            assert proc.returncode is None, f"stt-operator exited early:\n{log_path.read_text()[-3000:]}"
        finally:
            # pytest shows this captured output only when the test failed.
            print(f"--- stt-operator log (tail) ---\n{log_path.read_text()[-8000:]}")
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout=10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

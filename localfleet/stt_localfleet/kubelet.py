"""A process "kubelet" (and the bits of the deployment controller it needs) for the local fleet.

It watches Deployments of `stt-server` pods through the API server, runs each replica as a real
`stt-server` process on its own loopback address (127.0.0.2, 127.0.0.3, ...: Linux routes all of
127/8 to `lo`), publishes a Pod object per replica (owned directly by the Deployment: there is no
ReplicaSet), reports readiness from the pod's readiness probe path (`/health/ready`), and writes the
Deployment's status like the deployment controller. Pods carry a finalizer so that a DELETE only
marks them (`deletionTimestamp`); the kubelet then sends SIGTERM, waits up to
`terminationGracePeriodSeconds`, SIGKILLs if needed, and releases the finalizer. docs/localfleet.md
lists what is not emulated.

Run: `python -m stt_localfleet.kubelet --workdir DIR` with KUBECONFIG set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets as pysecrets
import signal
import time
from pathlib import Path
from typing import Any, Final

import aiohttp

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, credentials_from_env, resource_path
from stt_localfleet.podprocess import LaunchError, PodProcess, plan_launch
from stt_localfleet.pods import (
    AddressPool,
    LocalPod,
    container_ports,
    deletion_rank,
    deployment_status,
    now_iso,
    pod_status,
    readiness_probe,
    template_hash,
)

log = logging.getLogger("stt_localfleet.kubelet")
FINALIZER: Final = "localfleet.sttfleet.io/kubelet"
NODE_NAME: Final = "localfleet"
SERVER_LABEL: Final = ("app.kubernetes.io/name", "stt-server")


class Kubelet:
    """Reconciles Deployments into local processes; `run()` until cancelled, then stops every pod."""

    def __init__(self, api: KubeApi, *, workdir: Path, resync_sec: float = 1.0, probe_sec: float = 0.5,
                 executable: str | None = None) -> None:
        self.api = api
        self.workdir = workdir
        self.resync_sec = resync_sec
        self.probe_sec = probe_sec
        self.executable = executable
        self.pods: dict[str, LocalPod] = {}  # by "<namespace>/<name>"
        self.addresses = AddressPool()
        self._wake = asyncio.Event()
        self._terminations: set[asyncio.Task[None]] = set()
        self._published: dict[str, dict[str, Any]] = {}
        self._http: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        try:
            await self._forget_previous_run()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_loop())
                group.create_task(self._reconcile_loop())
                group.create_task(self._probe_loop())
        finally:
            await self.shutdown()
            await self._http.close()

    async def shutdown(self) -> None:
        """Stop every pod with its grace period (concurrently) and release the Pod objects."""
        for pod in list(self.pods.values()):
            if not pod.deleting:
                self._start_termination(pod)
        if self._terminations:
            await asyncio.gather(*self._terminations, return_exceptions=True)

    async def _forget_previous_run(self) -> None:
        # Pods left by a kubelet that died have no process behind them: release them.
        for pod in await self.api.list(resource_path("v1", "pods")):
            if (pod.get("spec") or {}).get("nodeName") == NODE_NAME:
                meta = pod["metadata"]
                path = resource_path("v1", "pods", namespace=meta.get("namespace"), name=meta["name"])
                with contextlib.suppress(ApiError):
                    await self.api.merge_patch(path, {"metadata": {"finalizers": []}})
                    await self.api.delete(path, grace_period=0)

    async def _watch_loop(self) -> None:
        # Watches only wake the reconciler; the reconciler always reads the current state (level-based).
        while True:
            try:
                async for _ in self.api.watch(resource_path("apps/v1", "deployments")):
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, OSError, ValueError) as exc:  # dropped: reconnect
                log.debug("deployment watch ended: %s", exc)
            await asyncio.sleep(self.resync_sec)

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives as
                # the event fires (gh-86296), and this loop would then never stop.
                async with asyncio.timeout(self.resync_sec):
                    await self._wake.wait()

    async def reconcile_once(self) -> None:
        deployments = [d for d in await self.api.list(resource_path("apps/v1", "deployments"))
                       if ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels", {})
                       .get(SERVER_LABEL[0]) == SERVER_LABEL[1]]
        pod_objects = {f"{p['metadata'].get('namespace')}/{p['metadata']['name']}": p
                       for p in await self.api.list(resource_path("v1", "pods"))}
        # Pods deleted through the API (by a person, or by us) terminate gracefully.
        for key, pod in list(self.pods.items()):
            obj = pod_objects.get(key)
            if not pod.deleting and (obj is None or (obj.get("metadata") or {}).get("deletionTimestamp")):
                self._start_termination(pod, already_deleted=True)
        live = set()
        for dep in deployments:
            live.add(f"{dep['metadata'].get('namespace')}/{dep['metadata']['name']}")
            await self._reconcile_deployment(dep)
        for pod in list(self.pods.values()):
            if f"{pod.namespace}/{pod.deployment}" not in live and not pod.deleting:
                self._start_termination(pod)  # its Deployment is gone
        for pod in list(self.pods.values()):
            if pod.process is None and not pod.deleting:
                await self._launch(pod)

    async def _reconcile_deployment(self, dep: dict[str, Any]) -> None:
        meta, spec = dep["metadata"], dep["spec"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        desired = 1 if spec.get("replicas") is None else int(spec["replicas"])  # unset means 1, as defaulted
        thash = template_hash(spec.get("template") or {})
        mine = [p for p in self.pods.values() if p.namespace == namespace and p.deployment == name and not p.deleting]
        new = [p for p in mine if p.template_hash == thash]
        old = [p for p in mine if p.template_hash != thash]
        # Rolling update with maxSurge 1 / maxUnavailable 0; a plain scale-up creates all at once.
        allowed_total = desired + (1 if old else 0)
        for _ in range(max(0, min(desired - len(new), allowed_total - len(mine)))):
            await self._create_pod(dep, thash)
        ready_total = sum(p.ready for p in mine)
        for pod in sorted(old, key=deletion_rank):
            if not pod.ready or ready_total > desired:
                ready_total -= pod.ready
                self._start_termination(pod)
        for pod in sorted(new, key=deletion_rank)[: max(0, len(new) - desired)]:
            self._start_termination(pod)
        await self._publish_status(dep, thash)

    async def _create_pod(self, dep: dict[str, Any], thash: str) -> None:
        meta, template = dep["metadata"], dep["spec"].get("template") or {}
        namespace = meta.get("namespace") or "default"
        name = f"{meta['name']}-{thash}-{pysecrets.token_hex(3)[:5]}"
        tmeta = template.get("metadata") or {}
        obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": namespace, "finalizers": [FINALIZER],
                "creationTimestamp": now_iso(), "uid": pysecrets.token_hex(16),
                "labels": {**(tmeta.get("labels") or {}), "pod-template-hash": thash},
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                     "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {**(template.get("spec") or {}), "nodeName": NODE_NAME},
            "status": {"phase": "Pending", "hostIP": "127.0.0.1",
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_iso()}]},
        }
        await self.api.create(resource_path("v1", "pods", namespace=namespace), obj)
        pod = LocalPod(name=name, namespace=namespace, deployment=meta["name"], template_hash=thash,
                       address=self.addresses.allocate(container_ports(template)), template=obj)
        self.pods[f"{namespace}/{name}"] = pod
        await self._patch(pod.path, {"status": obj["status"]})  # create may reset status, as for Deployments
        log.info("pod %s/%s created on %s", namespace, name, pod.address)

    async def _read_sources(self, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
        cms = await self.api.list(resource_path("v1", "configmaps", namespace=namespace))
        secs = await self.api.list(resource_path("v1", "secrets", namespace=namespace))
        return {c["metadata"]["name"]: c for c in cms}, {s["metadata"]["name"]: s for s in secs}

    async def _launch(self, pod: LocalPod) -> None:
        if time.monotonic() < pod.next_restart:
            return
        configmaps, secrets = await self._read_sources(pod.namespace)
        try:
            plan = plan_launch(pod.template, address=pod.address, workdir=self.workdir / pod.name,
                               configmaps=configmaps, secrets=secrets, executable=self.executable)
        except LaunchError as exc:
            if pod.waiting != (exc.reason, exc.message):
                pod.waiting = (exc.reason, exc.message)
                await self._patch_pod_status(pod, phase="Pending")
            return
        pod.plan, pod.waiting = plan, None
        pod.process = PodProcess(plan, log_path=self.workdir / f"{pod.name}.log")
        await pod.process.start()
        log.info("pod %s started: pid %s on %s:%d", pod.name, pod.process.pid, pod.address, plan.grpc_port)
        await self._patch_pod_status(pod, phase="Running", started=True)

    def _start_termination(self, pod: LocalPod, *, already_deleted: bool = False) -> None:
        pod.deleting, pod.ready = True, False
        task = asyncio.get_running_loop().create_task(self._terminate(pod, already_deleted=already_deleted))
        self._terminations.add(task)
        task.add_done_callback(self._terminations.discard)
        self._wake.set()

    async def _terminate(self, pod: LocalPod, *, already_deleted: bool) -> None:
        api_trouble = (ApiError, aiohttp.ClientError, OSError)
        try:
            # The API may already be gone (fleet teardown): the process is stopped regardless.
            with contextlib.suppress(*api_trouble):
                if not already_deleted:
                    await self.api.delete(pod.path)  # the finalizer turns this into deletionTimestamp
                await self._patch_pod_status(pod, phase="Running")
            if pod.process is not None:
                code = await pod.process.terminate()
                log.info("pod %s stopped with exit code %s", pod.name, code)
        finally:
            with contextlib.suppress(*api_trouble):
                await self.api.merge_patch(pod.path, {"metadata": {"finalizers": []}})
                await self.api.delete(pod.path, grace_period=0)  # as the kubelet ends graceful deletion
            self.pods.pop(f"{pod.namespace}/{pod.name}", None)
            self.addresses.release(pod.address)
            self._wake.set()

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(p) for p in list(self.pods.values())), return_exceptions=True)
            await asyncio.sleep(self.probe_sec)

    def _probe_url(self, pod: LocalPod) -> str:
        assert pod.plan is not None
        http_get = readiness_probe(pod.template).get("httpGet") or {}
        port = http_get.get("port", pod.plan.http_port)
        if isinstance(port, str):
            port = {"grpc": pod.plan.grpc_port}.get(port, pod.plan.http_port)
        return f"http://{pod.address}:{port}{http_get.get('path', '/health/ready')}"

    async def _probe(self, pod: LocalPod) -> None:
        if pod.process is None or pod.plan is None:
            return
        if pod.process.exited and not pod.deleting:
            # restartPolicy Always: restart in place with a capped back-off, like CrashLoopBackOff.
            pod.restarts += 1
            pod.process, pod.ready = None, False
            pod.next_restart = time.monotonic() + min(10.0, 2.0 ** pod.restarts)
            pod.waiting = ("CrashLoopBackOff", f"back-off restarting failed container (restart {pod.restarts})")
            await self._patch_pod_status(pod, phase="Running")
            self._wake.set()
            return
        if pod.deleting or self._http is None or time.monotonic() < pod.next_probe:
            return
        probe = readiness_probe(pod.template)
        # The probe's own period once the pod has been ready (a busy server gets the tolerance
        # its manifest asks for); every probe_sec before that, so a new pod is seen promptly.
        pod.next_probe = time.monotonic() + (float(probe.get("periodSeconds", 10)) if pod.ever_ready else 0.0)
        ok = False
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            timeout = aiohttp.ClientTimeout(total=float(probe.get("timeoutSeconds", 1)))
            async with self._http.get(self._probe_url(pod), timeout=timeout) as resp:
                ok = 200 <= resp.status < 400
        pod.probe_successes, pod.probe_failures = (pod.probe_successes + 1, 0) if ok else (0, pod.probe_failures + 1)
        ready = pod.ready
        if not pod.ready and pod.probe_successes >= int(probe.get("successThreshold", 1)):
            ready = True
        elif pod.ready and pod.probe_failures >= int(probe.get("failureThreshold", 3)):
            ready = False
        if ready != pod.ready:
            pod.ready, pod.ever_ready = ready, pod.ever_ready or ready
            pod.ready_since = time.monotonic() if ready else 0.0
            pod.ready_changed_at = now_iso()
            log.info("pod %s ready=%s", pod.name, ready)
            await self._patch_pod_status(pod, phase="Running", started=True)
            self._wake.set()

    async def _patch_pod_status(self, pod: LocalPod, *, phase: str, started: bool = False) -> None:
        if started and pod.process is not None and pod.start_time is None:
            pod.start_time = now_iso()
        await self._patch(pod.path, {"status": pod_status(pod, phase=phase)})

    async def _patch(self, path: str, patch: dict[str, Any]) -> None:
        try:
            await self.api.merge_patch(path + "/status", patch)
        except ApiError as exc:
            if exc.status not in (404, 405):
                raise
            with contextlib.suppress(ApiError):
                await self.api.merge_patch(path, patch)

    async def _publish_status(self, dep: dict[str, Any], thash: str) -> None:
        meta = dep["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        mine = [p for p in self.pods.values() if p.namespace == namespace and p.deployment == name]
        status = deployment_status(dep, mine, template_hash=thash)
        key = f"{namespace}/{name}"
        if self._published.get(key) != status or dep.get("status", {}).get("replicas") != status["replicas"]:
            await self._patch(resource_path("apps/v1", "deployments", namespace=namespace, name=name),
                              {"status": status})
            self._published[key] = status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run Deployments of stt-server as local processes.")
    parser.add_argument("--workdir", type=Path, required=True, help="per-pod files and logs")
    parser.add_argument("--resync", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s kubelet %(levelname)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)

    async def serve() -> None:
        # SIGTERM/SIGINT cancel the run, whose finally stops every pod gracefully.
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        async with KubeApi(credentials_from_env()) as api:
            await Kubelet(api, workdir=args.workdir, resync_sec=args.resync).run()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

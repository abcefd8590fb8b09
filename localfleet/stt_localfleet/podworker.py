"""One pod on the node, from admission to deletion: the kubelet's pod worker, for local processes.

`PodWorker.run` admits the pod (rejects one that asks for a resource the node lacks), gives it an
address from the pod CIDR, sets up its volumes (refreshing ConfigMap/Secret files every minute and tokens
at 80% of their lifetime), runs init containers in order and then every app container, restarts
them per `restartPolicy` with the crash-loop back-off, and writes the Pod's status whenever it
changed. When the pod gets a `deletionTimestamp` it stops every container (preStop, SIGTERM,
SIGKILL after the grace period), writes the final status and deletes the Pod with grace period 0
and a uid precondition. On node shutdown it stops the containers the same way but leaves the Pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Final

import aiohttp
from stt_operator.autoscaling.kubeapi import ApiError, resource_path

from stt_localfleet.containerrun import ContainerRun
from stt_localfleet.containerstart import ContainerStarter, NodeServices, PodEnvironment
from stt_localfleet.envvars import PodFacts, referenced_sources
from stt_localfleet.launcherrors import LaunchError
from stt_localfleet.pods import ContainerRecord, Terminated, now_iso, pod_phase, pod_ports, pod_status
from stt_localfleet.podsetup import admission_failure, grace_period, hosts_file, volumes_ready
from stt_localfleet.sources import fetch_sources
from stt_localfleet.volumes import write_files

log = logging.getLogger("stt_localfleet.podworker")
REMOVED_GRACE_SEC: Final = 2.0  # a pod force-deleted from the API: the kubelet's minimum grace


class PodWorker:
    """Runs one pod; `update` feeds it the latest Pod object (None: gone from the API)."""

    def __init__(self, services: NodeServices, pod: dict[str, Any]) -> None:
        self.s = services
        self.pod = pod
        meta, spec = pod["metadata"], pod.get("spec") or {}
        self.uid, self.namespace, self.name = str(meta["uid"]), str(meta["namespace"]), str(meta["name"])
        self.init_records = [ContainerRecord(name=c["name"], image=c.get("image", ""), init=True)
                             for c in spec.get("initContainers") or ()]
        self.records = [ContainerRecord(name=c["name"], image=c.get("image", "")) for c in spec.get("containers") or ()]
        self.runs: dict[str, ContainerRun] = {}
        self.starter = ContainerStarter(services, uid=self.uid, log_dir=self.log_dir, wake=self.wake,
                                        wake_at=self._wake_at)
        self.address: str | None = None
        self.start_time: str | None = None
        self.volume_dirs: dict[str, Path] | None = None
        self.sources: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        self.next_volume_sync = 0.0
        self.rejected: tuple[str, str] | None = None
        self.terminal = False
        self.passive = False
        self.removed = False
        self.shutting_down = False
        self.published: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._deadline: float | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_dir(self) -> Path:
        return self.s.workdir / "pods" / self.uid

    @property
    def log_dir(self) -> Path:
        return self.s.workdir / "logs" / f"{self.namespace}_{self.name}_{self.uid}"

    @property
    def deleting(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    def update(self, pod: dict[str, Any] | None) -> None:
        if pod is None:
            self.removed = True
        else:
            self.pod = pod
        self._wake.set()

    def request_shutdown(self) -> None:
        self.shutting_down = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _wake_at(self, delay: float) -> None:
        at = time.monotonic() + max(delay, 0.0)
        self._deadline = at if self._deadline is None else min(self._deadline, at)

    async def run(self) -> None:
        try:
            self._admit()
            while not (self.removed or self.deleting or self.shutting_down):
                # Cleared before the pass, not after it: a wake() that lands while the pass awaits
                # (a probe's first success during the status write) must start the next pass.
                self._wake.clear()
                try:
                    await self._sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pod %s: sync failed; retrying", self.key)
                    self._wake_at(self.s.retry_sec)
                await self._publish()
                await self._sleep()
            await self._stop_all()
            if self.deleting and not self.removed:
                await self._publish(terminal=True)
                await self._delete()
            elif self.shutting_down:
                with contextlib.suppress(ApiError, aiohttp.ClientError, OSError, TimeoutError):
                    async with asyncio.timeout(3.0):
                        await self._publish()
        finally:
            for run in self.runs.values():
                run.kill_now()
                await run.close()
            if self.address and self.address != self.s.node_ip:
                self.s.addresses.release(self.address)
            self.s.tokens.forget(self.uid)
            shutil.rmtree(self.pod_dir, ignore_errors=True)

    async def _sleep(self) -> None:
        timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that lands as the event fires.
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._deadline = None

    def _admit(self) -> None:
        status, spec = self.pod.get("status") or {}, self.pod.get("spec") or {}
        self.start_time = status.get("startTime") or now_iso()
        if status.get("phase") in ("Succeeded", "Failed") or self.deleting:
            # Finished (under an earlier kubelet) or going: nothing starts, and its status stays as it is.
            self.terminal = self.passive = True
            return
        self.rejected = admission_failure(self.pod, self.s.allocatable)
        if self.rejected:
            self.s.events.record(self.pod, reason=self.rejected[0], kind="Warning", message=self.rejected[1])
            return
        self.address = self.s.node_ip if spec.get("hostNetwork") else self.s.addresses.allocate(
            pod_ports(self.pod), prefer=status.get("podIP"))
        before = {c.get("name"): c for c in [*(status.get("initContainerStatuses") or ()),
                                              *(status.get("containerStatuses") or ())]}
        for record in [*self.init_records, *self.records]:
            prior = before.get(record.name) or {}
            record.restart_count = int(prior.get("restartCount") or 0)
            state = prior.get("state") or {}
            if "terminated" in state:  # it ended under a kubelet that is gone: restartPolicy decides
                ended = state["terminated"]
                record.terminated = Terminated(int(ended.get("exitCode", 0)), str(ended.get("reason", "")),
                                               started_at=str(ended.get("startedAt") or self.start_time),
                                               finished_at=str(ended.get("finishedAt") or now_iso()))
            elif "running" in state or prior.get("lastState"):  # it ran; its process died with that kubelet
                record.last_terminated = Terminated(255, "Unknown", started_at=self.start_time,
                                                    finished_at=now_iso(), message="the node's kubelet restarted")
                self.starter.pending_restart.add(record.name)
        log.info("pod %s admitted on %s", self.key, self.address)

    async def _sync(self) -> None:
        if self.terminal or self.rejected:
            return
        if not await self._ensure_volumes():
            return
        spec = self.pod.get("spec") or {}
        for container, record in zip(spec.get("initContainers") or (), self.init_records, strict=False):
            if record.terminated is not None and record.terminated.exit_code == 0:
                continue
            await self.starter.maybe_start(self._environment(), container, record, self.runs, init=True)
            return  # init containers run one at a time, in order
        for container, record in zip(spec.get("containers") or (), self.records, strict=False):
            await self.starter.maybe_start(self._environment(), container, record, self.runs, init=False)
        if self._phase() in ("Succeeded", "Failed"):
            self.terminal = True

    def _environment(self) -> PodEnvironment:
        hosts = self.pod_dir / "etc-hosts"
        return PodEnvironment(pod=self.pod, address=self.address or self.s.node_ip, sources=self.sources,
                              volume_dirs=self.volume_dirs or {}, etc_hosts=hosts if hosts.exists() else None)

    def _phase(self, *, terminal: bool = False) -> str:
        if self.rejected:
            return "Failed"
        policy = str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")
        return pod_phase(policy, self.records, init=self.init_records, terminal=terminal)

    async def _ensure_volumes(self) -> bool:
        refresh = self.s.tokens.next_refresh(self.uid)
        token_due = refresh is not None and time.time() >= refresh
        if self.volume_dirs is not None and time.monotonic() < self.next_volume_sync and not token_due:
            # Re-armed on every pass: a nearer deadline (a back-off) may have replaced this one.
            self._wake_at(self.next_volume_sync - time.monotonic())
            if refresh is not None:
                self._wake_at(refresh - time.time())
            return True
        try:
            configmaps, secrets = referenced_sources(self.pod)
            self.sources = await fetch_sources(self.s.api, self.namespace, configmaps=configmaps, secrets=secrets)
            facts = PodFacts(pod_ip=self.address or "", host_ip=self.s.node_ip, node_allocatable=self.s.allocatable)
            self.volume_dirs = await volumes_ready(self.pod, self.pod_dir / "volumes", sources=self.sources,
                                                   facts=facts, tokens=self.s.tokens)
            if not (self.pod.get("spec") or {}).get("hostNetwork"):
                api_host = self.s.service_env.get("KUBERNETES_SERVICE_HOST", "")
                hosts = hosts_file(self.pod, pod_ip=self.address or "", api_host=api_host)
                write_files(self.pod_dir, {"etc-hosts": (hosts.encode(), 0o644)}, prune=False)
        except LaunchError as exc:
            self.s.events.record(self.pod, reason="FailedMount", kind="Warning", message=exc.message)
            self._wake_at(self.s.retry_sec)
            return self.volume_dirs is not None  # a failed refresh leaves running containers alone
        self.next_volume_sync = time.monotonic() + self.s.volume_resync_sec
        self._wake_at(self.s.volume_resync_sec)
        refresh = self.s.tokens.next_refresh(self.uid)
        if refresh is not None:
            self._wake_at(refresh - time.time())
        return True

    async def _stop_all(self) -> None:
        if self.removed:
            grace = REMOVED_GRACE_SEC
        else:
            grace = grace_period(self.pod, deleting=self.deleting and not self.shutting_down)
        running = [run for run in self.runs.values() if not run.exited.is_set()]
        for run in running:
            self.s.events.record(self.pod, reason="Killing", container=run.plan.name,
                                 message=f"Stopping container {run.plan.name}")
        await asyncio.gather(*(run.stop(grace) for run in running))
        for record in [*self.init_records, *self.records]:
            if record.terminated is None and record.running_since is None:
                record.ready = False

    async def _publish(self, *, terminal: bool = False) -> None:
        if self.passive:
            return
        phase = self._phase(terminal=terminal)
        status = pod_status(self.pod, host_ip=self.s.node_ip, pod_ip=self.address, start_time=self.start_time,
                            phase=phase, init=self.init_records, containers=self.records,
                            sandbox_ready=self.address is not None and not terminal, last_written=self.published)
        if self.rejected:
            status.update({"reason": self.rejected[0], "message": self.rejected[1]})
        if status == self.published:
            return
        try:
            await self.s.api.merge_patch(resource_path("v1", "pods", namespace=self.namespace, name=self.name,
                                                       subresource="status"), {"status": status})
            self.published = status
        except ApiError as exc:
            if exc.status == 404:
                self.removed = True
                return
            log.warning("pod %s: status update failed: %s", self.key, exc)
            self._wake_at(1.0)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("pod %s: status update failed: %s", self.key, exc)
            self._wake_at(1.0)

    async def _delete(self) -> None:
        """End graceful deletion, as the kubelet does once every container has stopped (retried)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        path = resource_path("v1", "pods", namespace=self.namespace, name=self.name)
        while not (self.removed or self.shutting_down):
            try:
                await self.s.api.request("DELETE", path, body=body)
                log.info("pod %s deleted", self.key)
                return
            except ApiError as exc:
                if exc.status in (404, 409):  # gone already, or a new pod of the same name
                    return
                log.warning("pod %s: delete failed (retrying): %s", self.key, exc)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("pod %s: delete failed (retrying): %s", self.key, exc)
            self._wake.clear()
            self._wake_at(self.s.retry_sec)
            await self._sleep()

"""Starting a pod's containers, and deciding when they run again.

`ContainerStarter.maybe_start` is the kubelet's per-container step of SyncPod: leave a running
container alone; after an exit apply `restartPolicy`, then the crash-loop back-off (state
`waiting: CrashLoopBackOff`, a `BackOff` Event); map the image, plan the process and launch it,
turning each failure into the kubelet's waiting reason (`ImageNotLocal`,
`CreateContainerConfigError`, `RunContainerError`) or, when the program cannot be exec'd, a
termination with reason `StartError` (exit code 128) that counts as a crash. `NodeServices` is
what every pod worker shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from stt_operator.autoscaling.kubeapi import KubeApi

from stt_localfleet.backoff import CrashBackoff
from stt_localfleet.containerrun import ContainerRun
from stt_localfleet.envvars import PodFacts
from stt_localfleet.events import EventRecorder
from stt_localfleet.images import resolve_image
from stt_localfleet.launcherrors import LaunchError
from stt_localfleet.podprocess import ContainerProcess, plan_container
from stt_localfleet.pods import AddressPool, ContainerRecord, Terminated, now_iso
from stt_localfleet.podsetup import grace_period, restart_wanted
from stt_localfleet.sources import TokenCache

log = logging.getLogger("stt_localfleet.containerstart")


@dataclass
class NodeServices:
    """What every pod worker shares: the API, the node's facts, and the helpers with state."""

    api: KubeApi
    node_name: str
    node_ip: str
    workdir: Path
    service_env: Mapping[str, str]
    addresses: AddressPool
    events: EventRecorder
    tokens: TokenCache
    http: aiohttp.ClientSession
    backoff: CrashBackoff
    image_paths: tuple[Path, ...]
    allocatable: Mapping[str, str]
    executables: Mapping[str, str] | None = None
    volume_resync_sec: float = 60.0
    retry_sec: float = 2.0


@dataclass(frozen=True)
class PodEnvironment:
    """What a container start needs from its pod, as of now."""

    pod: Mapping[str, Any]
    address: str
    sources: tuple[Mapping[str, Any], Mapping[str, Any]]  # ConfigMaps, Secrets by name (None: missing)
    volume_dirs: Mapping[str, Path]
    etc_hosts: Path | None = None


class ContainerStarter:
    """The start and restart bookkeeping of one pod's containers."""

    def __init__(self, services: NodeServices, *, uid: str, log_dir: Path, wake: Callable[[], None],
                 wake_at: Callable[[float], None]) -> None:
        self.s = services
        self.uid = uid
        self.log_dir = log_dir
        self.wake = wake
        self.wake_at = wake_at
        self.finished: dict[str, float] = {}  # container -> monotonic time of its last exit
        self.pending_restart: set[str] = set()
        self.retry_at: dict[str, float] = {}

    async def maybe_start(self, env: PodEnvironment, container: Mapping[str, Any], record: ContainerRecord,
                          runs: dict[str, ContainerRun], *, init: bool) -> None:
        """Start `container` if it should run now; `runs` holds the pod's running containers by name."""
        name = record.name
        run = runs.get(name)
        if run is not None:
            if not run.exited.is_set():
                return
            del runs[name]
            await run.close()
            self.finished[name] = run.finished_at or time.monotonic()
        if record.terminated is not None:  # it exited: does it run again?
            policy = str((env.pod.get("spec") or {}).get("restartPolicy") or "Always")
            if not restart_wanted(policy, record.terminated.exit_code, init=init):
                return
            record.last_terminated, record.terminated = record.terminated, None
            self.pending_restart.add(name)
        backoff_key = f"{self.uid}/{name}"
        if name in self.pending_restart:
            remaining = self.s.backoff.remaining(backoff_key, finished_at=self.finished.get(name, 0.0))
            if remaining > 0:
                meta = env.pod.get("metadata") or {}
                pod_ref = f"{meta.get('name')}_{meta.get('namespace')}({self.uid})"
                delay = self.s.backoff.current(backoff_key)
                record.waiting = ("CrashLoopBackOff",
                                  f"back-off {delay:g}s restarting failed container={name} pod={pod_ref}")
                self.s.events.record(env.pod, reason="BackOff", kind="Warning", container=name,
                                     message=f"Back-off restarting failed container {name} in pod {pod_ref}")
                self.wake_at(remaining)
                return
        retry_in = self.retry_at.get(name, 0.0) - time.monotonic()
        if retry_in > 0:
            self.wake_at(retry_in)
            return
        if name in self.pending_restart:
            self.s.backoff.next(backoff_key)
            self.pending_restart.discard(name)
            record.restart_count += 1
        run = await self._start(env, container, record)
        if run is not None:
            runs[name] = run

    def _failed(self, env: PodEnvironment, record: ContainerRecord, exc: LaunchError, event: str) -> None:
        record.waiting = (exc.reason, exc.message)
        self.s.events.record(env.pod, reason="Failed", kind="Warning", container=record.name, message=event)
        self.retry_at[record.name] = time.monotonic() + self.s.retry_sec
        self.wake_at(self.s.retry_sec)

    async def _start(self, env: PodEnvironment, container: Mapping[str, Any],
                     record: ContainerRecord) -> ContainerRun | None:
        image_ref = str(container.get("image") or "")
        try:
            image = resolve_image(image_ref, executables=self.s.executables)
        except LaunchError as exc:
            self._failed(env, record, exc, f'Failed to pull image "{image_ref}": {exc.message}')
            return None
        record.image_id = image.image_id
        self.s.events.record(env.pod, reason="Pulled", container=record.name,
                             message=f'Container image "{image_ref}" already present on machine')
        try:
            plan = plan_container(env.pod, container, image=image, service_env=self.s.service_env,
                                  facts=PodFacts(pod_ip=env.address, host_ip=self.s.node_ip,
                                                 node_allocatable=self.s.allocatable),
                                  configmaps=env.sources[0], secrets=env.sources[1], volume_dirs=env.volume_dirs,
                                  image_paths=self.s.image_paths, etc_hosts=env.etc_hosts)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / f"{record.name}.log").open("ab") as log_file:
                process = await ContainerProcess.start(plan.launch, log=log_file)
        except LaunchError as exc:
            if exc.reason != "StartError":
                self._failed(env, record, exc, f"Error: {exc.message}")
                return None
            # The program itself could not be exec'd: the container "ran" and failed, as with runc.
            now = now_iso()
            record.terminated = Terminated(128, "StartError", started_at=now, finished_at=now, message=exc.message)
            self.finished[record.name] = time.monotonic()
            self.s.events.record(env.pod, reason="Failed", kind="Warning", container=record.name,
                                 message=f"Error: {exc.message}")
            self.wake()
            return None
        self.s.events.record(env.pod, reason="Created", container=record.name,
                             message=f"Created container: {record.name}")
        self.s.events.record(env.pod, reason="Started", container=record.name,
                             message=f"Started container {record.name}")
        meta = env.pod.get("metadata") or {}
        log.info("pod %s/%s: container %s started, pid %s", meta.get("namespace"), meta.get("name"), record.name,
                 process.pid)
        pod = env.pod
        return ContainerRun(pod=pod, container=container, record=record, plan=plan, process=process,
                            pod_ip=env.address, http=self.s.http, events=self.s.events, wake=self.wake,
                            grace_sec=lambda: grace_period(pod))

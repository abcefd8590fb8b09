"""One run of one container: its process, its probes, its exit, and how it is stopped.

A `ContainerRun` starts when the pod worker launches the container and ends when the process
exits. It writes what it observes into the container's `ContainerRecord` (running, started,
ready, terminated) and calls `wake` so the worker republishes status and decides about restarts.
A `postStart` hook runs first (probes wait for it; if it fails the container is killed).
A failed liveness or startup probe stops the run the way the kubelet kills a container: a
`Killing` Event, the preStop hook, SIGTERM, SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp

from stt_localfleet.events import EventRecorder
from stt_localfleet.launcher import LaunchSpec, spawn
from stt_localfleet.launcherrors import LaunchError
from stt_localfleet.podprocess import ContainerPlan, ContainerProcess
from stt_localfleet.pods import ContainerRecord, now_iso, terminated
from stt_localfleet.probes import Probe, ProbeVerdict, check, container_probes

log = logging.getLogger("stt_localfleet.containerrun")
MIN_GRACE_AFTER_HOOK_SEC: Final = 2.0  # the kubelet's floor for SIGTERM after a preStop hook


class ContainerRun:
    """A started container process and the tasks that watch it."""

    def __init__(self, *, pod: Mapping[str, Any], container: Mapping[str, Any], record: ContainerRecord,
                 plan: ContainerPlan, process: ContainerProcess, pod_ip: str, http: aiohttp.ClientSession,
                 events: EventRecorder, wake: Callable[[], None], grace_sec: Callable[[], float]) -> None:
        self.pod = pod
        self.container = container
        self.record = record
        self.plan = plan
        self.process = process
        self.pod_ip = pod_ip
        self.http = http
        self.events = events
        self.wake = wake
        self.grace_sec = grace_sec
        self.finished_at: float | None = None  # monotonic, once the process has exited
        self.stopping = False
        self.exited = asyncio.Event()
        self._probes = container_probes(container)
        self._started = asyncio.Event()
        self._hooked = asyncio.Event()  # the postStart hook is done (or there is none)
        self._tasks: set[asyncio.Task[None]] = set()
        post_start = (container.get("lifecycle") or {}).get("postStart")
        record.running_since, record.pid, record.terminated = now_iso(), process.pid, None
        record.started = "startup" not in self._probes
        record.ready = record.started and "readiness" not in self._probes and not post_start
        if record.started:
            self._started.set()
        self._spawn(self._watch_exit())
        if post_start:
            self._spawn(self._post_start(post_start))
        else:
            self._hooked.set()
        for probe in self._probes.values():
            self._spawn(self._probe_loop(probe))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_exit(self) -> None:
        code = await self.process.wait()
        self.finished_at = time.monotonic()
        started_at = self.record.running_since or now_iso()
        self.record.terminated = terminated(code, started_at=started_at, container_id=self.record.container_id)
        self.record.running_since, self.record.ready, self.record.started = None, False, False
        log.info("container %s of pod %s exited with %s", self.plan.name, _pod_name(self.pod), code)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self.exited.set()
        self.wake()

    async def _post_start(self, hook: Mapping[str, Any]) -> None:
        # As the kubelet: probes wait for the hook; a failed hook kills the container (then restartPolicy).
        ok, why = await check(hook, pod_ip=self.pod_ip, container=self.container, timeout=self.grace_sec(),
                              http=self.http, run_exec=self.exec)
        if not ok:
            self.events.record(self.pod, reason="FailedPostStartHook", kind="Warning", container=self.plan.name,
                               message=f"PostStartHook failed: {why}")
            await self.stop(self.grace_sec())
            return
        self._hooked.set()
        if self.record.started and "readiness" not in self._probes:
            self.record.ready = True
            self.wake()

    async def _probe_loop(self, probe: Probe) -> None:
        verdict = ProbeVerdict(probe)
        await self._hooked.wait()
        if probe.kind != "startup":
            await self._started.wait()  # liveness and readiness wait for the startup probe
        await asyncio.sleep(probe.initial_delay)
        while not self.exited.is_set():
            ok, why = await check(probe.handler, pod_ip=self.pod_ip, container=self.container,
                                  timeout=probe.timeout, http=self.http, run_exec=self.exec)
            if self.exited.is_set():
                return
            if not ok:
                self.events.record(self.pod, reason="Unhealthy", kind="Warning", container=self.plan.name,
                                   message=f"{probe.kind.capitalize()} probe failed: {why}")
            changed = verdict.record(ok)
            if probe.kind == "readiness" and changed:
                self.record.ready = verdict.ok and self.record.started
                self.wake()
            elif probe.kind == "startup" and verdict.ok:
                self.record.started = True
                self.record.ready = "readiness" not in self._probes and self._hooked.is_set()
                self._started.set()
                self.wake()
                return  # a startup probe stops once it has succeeded
            elif verdict.failed_out and probe.kind in ("liveness", "startup") and not self.stopping:
                self.events.record(self.pod, reason="Killing", container=self.plan.name,
                                   message=f"Container {self.plan.name} failed {probe.kind} probe, will be restarted")
                await self.stop(self.grace_sec())
                return
            await asyncio.sleep(probe.period)

    async def exec(self, command: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run `command` inside this container's mount namespace, with its environment."""
        if self.process.returncode is not None:
            return 1, "container is not running"
        launch = LaunchSpec(argv=tuple(command), env=self.plan.launch.env, cwd=self.plan.launch.cwd,
                            join_pid=self.process.pid)
        try:
            proc = await spawn(launch, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        except LaunchError as exc:
            return 126, exc.message
        try:
            async with asyncio.timeout(timeout):
                output = await proc.stdout.read() if proc.stdout else b""
                return await proc.wait(), output.decode(errors="replace")
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return -1, f"command timed out after {timeout:g}s"

    async def stop(self, grace_sec: float, *, pre_stop: bool = True) -> None:
        """preStop (within the grace period), SIGTERM, SIGKILL when the rest of the grace is over."""
        self.stopping = True
        if self.process.returncode is not None:
            await self.exited.wait()
            return
        begin = time.monotonic()
        hook = (self.container.get("lifecycle") or {}).get("preStop")
        if pre_stop and hook:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(grace_sec, 0.1)):
                    ok, why = await check(hook, pod_ip=self.pod_ip, container=self.container,
                                          timeout=max(grace_sec, 0.1), http=self.http, run_exec=self.exec)
                    if not ok:
                        self.events.record(self.pod, reason="FailedPreStopHook", kind="Warning",
                                           container=self.plan.name, message=f"PreStopHook failed: {why}")
            grace_sec = max(grace_sec - (time.monotonic() - begin), MIN_GRACE_AFTER_HOOK_SEC)
        await self.process.stop(grace_sec)
        await self.exited.wait()

    def kill_now(self) -> None:
        """SIGKILL the container's process group at once (the kubelet itself is going away)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _pod_name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"

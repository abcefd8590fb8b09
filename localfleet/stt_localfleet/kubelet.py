"""The local node agent: registers node `localfleet` and runs the pods the scheduler binds to it.

The real control plane does the rest: the ReplicaSet controller creates Pods, the scheduler sets
`spec.nodeName`, the endpointslice controller publishes the pod IPs this agent reports. The agent
authenticates as `system:node:<name>` (Node authorizer + NodeRestriction), lists and watches only
its own pods (`fieldSelector=spec.nodeName=<name>`), and hands each pod to a `PodWorker`
(podworker.py) that runs its containers as local processes, each in its own mount namespace,
on an address of the pod CIDR. Watches only feed the workers the newest object; each worker
reconciles from that state (level-based), and a dropped watch is resumed, or relisted after 410.

Run: `python -m stt_localfleet.kubelet --kubeconfig PATH --api-server URL --workdir DIR
[--node-name localfleet] [--backoff-scale 0.1]`. SIGTERM/SIGINT stop every pod with its grace
period (concurrently), then the agent exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, credentials_from_kubeconfig

from stt_localfleet import podnet
from stt_localfleet.backoff import CrashBackoff
from stt_localfleet.containerstart import NodeServices
from stt_localfleet.envvars import service_env
from stt_localfleet.events import EventRecorder
from stt_localfleet.images import image_paths
from stt_localfleet.node import NodeHeart, host_resources
from stt_localfleet.pods import AddressPool
from stt_localfleet.podworker import PodWorker
from stt_localfleet.sources import TokenCache

log = logging.getLogger("stt_localfleet.kubelet")
NODE_NAME: Final = "localfleet"
WATCH_TIMEOUT_SEC: Final = 300
RELIST_DELAY_SEC: Final = 1.0


class Kubelet:
    """Node registration, heartbeats and one worker per bound pod; `run()` until cancelled or `stop()`."""

    def __init__(self, api: KubeApi, *, workdir: Path, api_server_url: str, node_name: str = NODE_NAME,
                 node_ip: str = podnet.NODE_IP, pod_cidr: str = str(podnet.POD_CIDR), backoff_scale: float = 1.0,
                 executables: Mapping[str, str] | None = None, volume_resync_sec: float = 60.0) -> None:
        self.api = api
        self.workdir = workdir
        self.api_server_url = api_server_url
        self.node_name = node_name
        self.node_ip = node_ip
        self.pod_cidr = pod_cidr
        self.backoff_scale = backoff_scale
        self.executables = executables
        self.volume_resync_sec = volume_resync_sec
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._services: NodeServices | None = None

    async def run(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, force_close=True)) as http:
            events = EventRecorder(self.api, host=self.node_name)
            resources = host_resources(self.workdir)
            self._services = NodeServices(
                api=self.api, node_name=self.node_name, node_ip=self.node_ip, workdir=self.workdir,
                service_env=service_env(self.api_server_url),
                addresses=AddressPool(self.pod_cidr, node_ip=self.node_ip), events=events,
                tokens=TokenCache(self.api), http=http, backoff=CrashBackoff(scale=self.backoff_scale),
                image_paths=image_paths(), allocatable=resources, executables=self.executables,
                volume_resync_sec=self.volume_resync_sec, retry_sec=max(0.2, 2.0 * self.backoff_scale))
            heart = NodeHeart(self.api, name=self.node_name, node_ip=self.node_ip, workdir=self.workdir)
            try:
                await self._register(heart)
                async with asyncio.TaskGroup() as group:
                    group.create_task(heart.run())
                    group.create_task(self._watch_pods())
            finally:
                await self.shutdown()
                await events.flush()

    async def _register(self, heart: NodeHeart) -> None:
        while True:
            try:
                await heart.register()
                return
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("could not register node %s (retrying in %g s): %s", self.node_name,
                            RELIST_DELAY_SEC, exc)
                await asyncio.sleep(RELIST_DELAY_SEC)

    async def shutdown(self) -> None:
        """Stop every pod with its grace period, all at once, and wait for them."""
        for worker in self.workers.values():
            worker.request_shutdown()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _watch_pods(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        version: str | None = None
        while True:
            try:
                if version is None:
                    body = await self.api.request("GET", "/api/v1/pods", params={"fieldSelector": selector})
                    version = str(body["metadata"]["resourceVersion"])
                    self._relisted(body.get("items") or [])
                params = {"fieldSelector": selector, "resourceVersion": version, "allowWatchBookmarks": "true",
                          "timeoutSeconds": str(WATCH_TIMEOUT_SEC)}
                async for event in self.api.watch("/api/v1/pods", params=params):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        code = obj.get("code")
                        log.info("pod watch error %s (%s): relisting", code, obj.get("message"))
                        version = None
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind == "DELETED":
                        self._gone(obj)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._seen(obj)
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, OSError, ValueError, KeyError, TimeoutError) as exc:
                log.warning("pod list/watch failed (%s): relisting in %g s", exc, RELIST_DELAY_SEC)
                version = None
                await asyncio.sleep(RELIST_DELAY_SEC)

    def _relisted(self, pods: list[dict[str, Any]]) -> None:
        present = {p["metadata"]["uid"] for p in pods}
        for uid in [u for u in self.workers if u not in present]:
            self.workers[uid].update(None)
        for pod in pods:
            self._seen(pod)

    def _seen(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if self._services is None:
            return
        worker = PodWorker(self._services, pod)
        self.workers[uid] = worker
        task = asyncio.get_running_loop().create_task(worker.run(), name=f"pod {worker.key}")
        self._tasks[uid] = task
        task.add_done_callback(lambda _: self._finished(uid))

    def _finished(self, uid: str) -> None:
        self.workers.pop(uid, None)
        task = self._tasks.pop(uid, None)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("pod worker %s failed", uid, exc_info=task.exception())

    def _gone(self, pod: dict[str, Any]) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.update(None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the pods bound to this node as local processes.")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the node's credentials")
    parser.add_argument("--api-server", required=True, help="the API server's URL as pods reach it")
    parser.add_argument("--workdir", type=Path, required=True, help="pod volumes and logs")
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument("--node-ip", default=podnet.NODE_IP, help="the node's InternalIP and pods' hostIP")
    parser.add_argument("--pod-cidr", default=str(podnet.POD_CIDR), help="pod IPs are taken from here")
    parser.add_argument("--backoff-scale", type=float, default=1.0,
                        help="multiply the crash-loop back-off (10 s doubling to 5 min)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s kubelet %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        # SIGTERM/SIGINT cancel the run, whose finally stops every pod gracefully.
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("serve() must run as a task")
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        async with KubeApi(credentials_from_kubeconfig(args.kubeconfig)) as api:
            kubelet = Kubelet(api, workdir=args.workdir, api_server_url=args.api_server, node_name=args.node_name,
                              node_ip=args.node_ip, pod_cidr=args.pod_cidr, backoff_scale=args.backoff_scale)
            await kubelet.run()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

"""A NodePort-style TCP proxy for the local fleet: 127.0.0.1:<nodePort> -> the Service's ready pods.

For every Service of type NodePort it listens on 127.0.0.1 at each port's `nodePort` and spreads
new connections round-robin over the ready, not-terminating pods the Service selects (the
`targetPort`, by number or container-port name). Endpoints are re-read continuously; a connection
stays on the pod it was given until one side closes it, so a draining pod finishes its streams
while new ones go elsewhere (like kube-proxy's conntrack-pinned flows).

Run: `python -m stt_localfleet.nodeport` with KUBECONFIG set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import logging
import random
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from stt_operator.autoscaling.kubeapi import (
    ApiError,
    KubeApi,
    credentials_from_env,
    matches_labels,
    resource_path,
)
from stt_operator.autoscaling.scraper import pod_is_ready

log = logging.getLogger("stt_localfleet.nodeport")
NODE_PORT_RANGE: Final = (30000, 32767)


def _target_port(pod: Mapping[str, Any], target: int | str) -> int | None:
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def endpoints(service: Mapping[str, Any], pods: list[dict[str, Any]], *, port: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(podIP, port) of every ready, not-terminating pod the Service selects, in a stable order."""
    selector = (service.get("spec") or {}).get("selector") or {}
    out = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not selector or not matches_labels(pod, selector) or pod["metadata"].get("deletionTimestamp"):
            continue
        ip = (pod.get("status") or {}).get("podIP")
        target = _target_port(pod, port.get("targetPort", port.get("port")))
        if ip and target and pod_is_ready(pod):
            out.append((ip, target))
    return out


def _free_node_port(taken: set[int]) -> int:
    for candidate in random.sample(range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1), 200):
        if candidate in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return candidate
    raise RuntimeError("no free port in the NodePort range")


@dataclass
class Listener:
    """One nodePort: its server socket, its current backends, and a round-robin counter."""

    key: str
    node_port: int
    backends: list[tuple[str, int]] = field(default_factory=list)
    server: asyncio.Server | None = None
    counter: itertools.count[int] = field(default_factory=itertools.count)
    connections: int = 0

    def pick(self) -> list[tuple[str, int]]:
        """Backends to try, starting at the next one in turn."""
        if not self.backends:
            return []
        start = next(self.counter) % len(self.backends)
        return self.backends[start:] + self.backends[:start]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: gRPC ends streams with the other direction still open
    except (ConnectionError, OSError):
        pass


class NodePortProxy:
    """Keeps one listener per NodePort service port, with endpoints refreshed every `refresh_sec`."""

    def __init__(self, api: KubeApi, *, host: str = "127.0.0.1", refresh_sec: float = 0.5) -> None:
        self.api = api
        self.host = host
        self.refresh_sec = refresh_sec
        self.listeners: dict[str, Listener] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except (ApiError, aiohttp.ClientError, OSError) as exc:
                    log.warning("endpoint refresh failed: %s", exc)
                await asyncio.sleep(self.refresh_sec)
        finally:
            await self.close()

    async def close(self) -> None:
        for listener in self.listeners.values():
            if listener.server is not None:
                listener.server.close()
        # Abort the open connections rather than cancel their tasks: asyncio's server callback
        # reports cancelled connection tasks as errors, and an abort ends each pump cleanly.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)

    async def refresh(self) -> None:
        services = [s for s in await self.api.list(resource_path("v1", "services"))
                    if (s.get("spec") or {}).get("type") == "NodePort"]
        pods = await self.api.list(resource_path("v1", "pods"))
        wanted: set[str] = set()
        for service in services:
            meta = service["metadata"]
            namespace = meta.get("namespace")
            if any(not p.get("nodePort") for p in service["spec"].get("ports") or ()):
                service = await self._allocate_node_ports(service)
            ns_pods = [p for p in pods if p["metadata"].get("namespace") == namespace]
            for port in service["spec"].get("ports") or ():
                if not port.get("nodePort"):
                    continue
                key = f"{namespace}/{meta['name']}:{port.get('name') or port['port']}"
                wanted.add(key)
                listener = self.listeners.get(key)
                if listener is None or listener.node_port != port["nodePort"]:
                    if listener is not None and listener.server is not None:
                        listener.server.close()
                    listener = Listener(key, int(port["nodePort"]))
                    listener.server = await asyncio.start_server(
                        functools.partial(self._serve, listener), self.host, listener.node_port,
                        reuse_address=True)
                    self.listeners[key] = listener
                    log.info("listening on %s:%d for %s", self.host, listener.node_port, key)
                backends = endpoints(service, ns_pods, port=port)
                if backends != listener.backends:
                    log.info("%s endpoints: %s", key, ", ".join(f"{h}:{p}" for h, p in backends) or "none")
                    listener.backends = backends
        for key in set(self.listeners) - wanted:
            gone = self.listeners.pop(key)
            if gone.server is not None:
                gone.server.close()

    async def _allocate_node_ports(self, service: dict[str, Any]) -> dict[str, Any]:
        """Give NodePort ports without a nodePort a free one from 30000-32767, as the API server would."""
        taken = {lst.node_port for lst in self.listeners.values()}
        ports = []
        for port in service["spec"].get("ports") or ():
            if not port.get("nodePort"):
                port = {**port, "nodePort": _free_node_port(taken)}
                taken.add(port["nodePort"])
            ports.append(port)
        meta = service["metadata"]
        path = resource_path("v1", "services", namespace=meta.get("namespace"), name=meta["name"])
        return await self.api.merge_patch(path, {"spec": {"ports": ports}})

    async def _serve(self, listener: Listener, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        listener.connections += 1
        upstream_w: asyncio.StreamWriter | None = None
        self._writers.add(client_w)
        try:
            for host, port in listener.pick():
                try:
                    upstream_r, opened = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
                    self._writers.add(opened)
                    upstream_w = opened
                    break
                except (TimeoutError, OSError):
                    continue  # that pod just went away: try the next one
            if upstream_w is None:
                return  # no ready endpoint: refuse, as kube-proxy does
            log.debug("connection %d to %s -> %s", listener.connections, listener.key,
                      upstream_w.get_extra_info("peername"))
            await asyncio.gather(_pump(client_r, upstream_w), _pump(upstream_r, client_w))
        finally:
            listener.connections -= 1
            for writer in (client_w, upstream_w):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()
                    with contextlib.suppress(ConnectionError, OSError):
                        await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="NodePort proxy on 127.0.0.1 for the local fleet.")
    parser.add_argument("--refresh", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nodeport %(levelname)s %(message)s")

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        async with KubeApi(credentials_from_env()) as api:
            await NodePortProxy(api, refresh_sec=args.refresh).run()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

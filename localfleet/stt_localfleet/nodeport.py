"""A NodePort TCP proxy for the local fleet that reads EndpointSlices, as kube-proxy does.

It keeps list+watch copies of every Service and every `discovery.k8s.io/v1` EndpointSlice. Each
TCP port of a NodePort or LoadBalancer Service that has a `nodePort` (allocated by the API server)
gets a listener on 127.0.0.1:<nodePort>; new connections go round-robin to the endpoints of the
slices labelled `kubernetes.io/service-name: <service>` whose slice port has the Service port's
name. Endpoints are the ready ones or, when none is ready, the serving-and-terminating ones
(kube-proxy's rule). A connection stays on the endpoint it was given until one side closes it, so a
draining pod finishes its streams while new ones go elsewhere (like kube-proxy's conntrack-pinned
flows). ClusterIPs are not routed: pods are processes with no virtual IPs in front of them.

The proxy runs on the host; with `--netns` it opens its connections to the endpoints inside the
cluster network (`podnet`), where the pod IPs live. `--forward PORT` also forwards the host's
127.0.0.1:PORT to 127.0.0.1:PORT inside that network: that is how kubectl on the host reaches the
API server.

Run: `python -m stt_localfleet.nodeport [--kubeconfig PATH] [--netns PATH] [--forward PORT]...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp
from stt_operator.autoscaling.kubeapi import (
    ApiError,
    KubeApi,
    credentials_from_env,
    credentials_from_kubeconfig,
    resource_path,
)

from stt_localfleet import podnet

log = logging.getLogger("stt_localfleet.nodeport")
CLUSTER_IP_NOTICE: Final = "ClusterIP traffic is not routed on this machine; use nodePorts"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
NODE_PORT_TYPES: Final = frozenset({"NodePort", "LoadBalancer"})
SERVICES: Final = resource_path("v1", "services")
ENDPOINT_SLICES: Final = resource_path("discovery.k8s.io/v1", "endpointslices")
WATCH_TIMEOUT_SEC: Final = 300  # the server ends a watch after this; it resumes from the last resourceVersion
CONNECT_TIMEOUT_SEC: Final = 2.0

Backend = tuple[str, int]
Connect = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass(frozen=True)
class Route:
    """Where one nodePort leads: its Service port (`ns/name:port`, for logs) and its backends, sorted."""

    node_port: int
    service_port: str
    backends: tuple[Backend, ...]


def _backends(slices: Iterable[Mapping[str, Any]], *, port_name: str, protocol: str) -> tuple[Backend, ...]:
    ready: set[Backend] = set()
    serving_terminating: set[Backend] = set()
    for piece in slices:
        if piece.get("addressType") != "IPv4":
            continue  # pod addresses here are 127.0.0.x; FQDN slices are not routed by kube-proxy either
        ports = [int(p["port"]) for p in piece.get("ports") or ()
                 if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol
                 and p.get("port")]
        for endpoint in piece.get("endpoints") or ():
            addresses = endpoint.get("addresses") or ()
            if not addresses:
                continue
            # The API's defaults for unset conditions: ready and serving true, terminating false.
            conditions = endpoint.get("conditions") or {}
            for port in ports:
                backend = (str(addresses[0]), port)
                if conditions.get("ready") is not False:
                    ready.add(backend)
                elif conditions.get("serving") is not False and conditions.get("terminating") is True:
                    serving_terminating.add(backend)
    return tuple(sorted(ready or serving_terminating))


def routing_table(services: Iterable[Mapping[str, Any]],
                  slices: Iterable[Mapping[str, Any]]) -> dict[int, Route]:
    """nodePort -> Route for every TCP nodePort of every NodePort or LoadBalancer Service."""
    by_service: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for piece in slices:
        meta = piece.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((meta.get("namespace") or "", owner), []).append(piece)
    table: dict[int, Route] = {}
    for service in services:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        if spec.get("type") not in NODE_PORT_TYPES:
            continue
        namespace, name = meta.get("namespace") or "", meta["name"]
        for port in spec.get("ports") or ():
            protocol = port.get("protocol") or "TCP"
            if not port.get("nodePort") or protocol != "TCP":
                continue
            port_name = port.get("name") or ""
            table[int(port["nodePort"])] = Route(
                node_port=int(port["nodePort"]),
                service_port=f"{namespace}/{name}:{port_name or port['port']}",
                backends=_backends(by_service.get((namespace, name), ()), port_name=port_name, protocol=protocol))
    return table


class ListWatchApi(Protocol):
    """The two calls a mirror makes (KubeApi has them)."""

    async def get(self, path: str) -> dict[str, Any]: ...

    def watch(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[dict[str, Any]]: ...


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


class Mirror:
    """A list+watch copy of one resource in every namespace, keyed `namespace/name`; sets `changed`."""

    def __init__(self, api: ListWatchApi, path: str, *, changed: asyncio.Event, retry_sec: float = 0.2) -> None:
        self.api = api
        self.path = path
        self.changed = changed
        self.retry_sec = retry_sec
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = False

    async def run(self) -> None:
        """List, then watch from the list's resourceVersion; relist after a 410 or any error, forever."""
        delay = self.retry_sec
        while True:
            try:
                listing = await self.api.get(self.path)
                self.objects = {_key(obj): obj for obj in listing.get("items") or ()}
                self.synced = True
                self.changed.set()
                await self._watch(str(listing["metadata"]["resourceVersion"]))
                delay = self.retry_sec  # only an expired watch ends well; failures keep backing off
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
                log.warning("list/watch of %s failed (%s); relisting in %.1f s", self.path, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _watch(self, version: str) -> None:
        """Apply watch events; return when the server says the version is gone (410), so run() relists."""
        while True:
            params = {"resourceVersion": version, "allowWatchBookmarks": "true",
                      "timeoutSeconds": str(WATCH_TIMEOUT_SEC)}
            async for event in self.api.watch(self.path, params=params):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        log.info("watch of %s expired at %s; relisting", self.path, version)
                        return
                    raise ApiError(int(obj.get("code") or 500), str(obj.get("message")))
                version = str(obj["metadata"]["resourceVersion"])
                if kind == "DELETED":
                    self.objects.pop(_key(obj), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self.objects[_key(obj)] = obj
                else:
                    continue  # BOOKMARK: only the resourceVersion moves
                self.changed.set()


@dataclass
class Listener:
    """One nodePort: its server socket, its current route, and a round-robin counter."""

    route: Route
    server: asyncio.Server | None = None
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self) -> list[Backend]:
        """Backends to try, starting at the next one in turn."""
        backends = list(self.route.backends)
        if not backends:
            return []
        start = next(self.counter) % len(backends)
        return backends[start:] + backends[:start]


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
    """One listener per TCP nodePort, kept in line with the Services and EndpointSlices it mirrors."""

    def __init__(self, api: ListWatchApi, *, host: str = "127.0.0.1", resync_sec: float = 30.0,
                 connect: Connect = asyncio.open_connection, forwards: Sequence[int] = ()) -> None:
        self.host = host
        self.connect = connect
        # Fixed forwards (the API server's port): listeners that no Service table ever removes.
        self.forwards = {port: Route(port, f"forward 127.0.0.1:{port}", (("127.0.0.1", port),)) for port in forwards}
        self.resync_sec = resync_sec  # also how soon a nodePort that could not be bound is tried again
        self._changed = asyncio.Event()
        self.services = Mirror(api, SERVICES, changed=self._changed)
        self.slices = Mirror(api, ENDPOINT_SLICES, changed=self._changed)
        self.listeners: dict[int, Listener] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def run(self) -> None:
        log.info(CLUSTER_IP_NOTICE)
        await self.apply({})  # the fixed forwards first: the watches below may go through one
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.services.run())
                group.create_task(self.slices.run())
                group.create_task(self._sync_forever())
        finally:
            await self.close()

    async def _sync_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_sec):
                    await self._changed.wait()
            self._changed.clear()
            # Until both lists are in, a Service would look as if it had no endpoints.
            if self.services.synced and self.slices.synced:
                await self.apply(routing_table(self.services.objects.values(), self.slices.objects.values()))

    async def apply(self, table: Mapping[int, Route]) -> None:
        """Listen on every nodePort of `table` (and the fixed forwards); stop listening on the others."""
        table = {**table, **self.forwards}
        for node_port in set(self.listeners) - set(table):
            gone = self.listeners.pop(node_port)
            if gone.server is not None:
                gone.server.close()  # open connections stay, as established flows do
            log.info("stopped listening on %s:%d (%s)", self.host, node_port, gone.route.service_port)
        for node_port, route in sorted(table.items()):
            listener = self.listeners.get(node_port)
            before = None if listener is None else listener.route.backends
            if listener is None:
                listener = Listener(route)
                try:
                    listener.server = await asyncio.start_server(
                        functools.partial(self._serve, listener), self.host, node_port, reuse_address=True)
                except OSError as exc:
                    log.warning("cannot listen on %s:%d for %s: %s", self.host, node_port, route.service_port, exc)
                    continue
                self.listeners[node_port] = listener
                log.info("listening on %s:%d for %s", self.host, node_port, route.service_port)
            listener.route = route
            if route.backends != before:
                log.info("%s endpoints: %s", route.service_port,
                         ", ".join(f"{h}:{p}" for h, p in route.backends) or "none")

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

    async def _serve(self, listener: Listener, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream_w: asyncio.StreamWriter | None = None
        self._writers.add(client_w)
        try:
            for host, port in listener.pick():
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_SEC):
                        upstream_r, opened = await self.connect(host, port)
                    self._writers.add(opened)
                    upstream_w = opened
                    break
                except (TimeoutError, OSError):
                    continue  # that endpoint just went away: try the next one
            if upstream_w is None:
                return  # no endpoint: close at once, as kube-proxy rejects
            log.debug("%s -> %s", listener.route.service_port, upstream_w.get_extra_info("peername"))
            await asyncio.gather(_pump(client_r, upstream_w), _pump(upstream_r, client_w))
        finally:
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
    parser.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG, ~/.kube/config, in-cluster")
    parser.add_argument("--resync", type=float, default=30.0, help="seconds between full re-syncs")
    parser.add_argument("--netns", type=Path, help="the cluster network (its /proc/PID/ns/net): endpoints live there")
    parser.add_argument("--forward", type=int, action="append", default=[],
                        help="also forward 127.0.0.1:PORT into the cluster network (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nodeport %(levelname)s %(message)s")
    credentials = credentials_from_kubeconfig(args.kubeconfig) if args.kubeconfig else credentials_from_env()
    connect: Connect = asyncio.open_connection
    if args.netns:
        connect = functools.partial(podnet.open_connection, args.netns)

    async def serve() -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("serve() runs as a task")
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        async with KubeApi(credentials) as api:
            await NodePortProxy(api, resync_sec=args.resync, connect=connect, forwards=args.forward).run()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve())


if __name__ == "__main__":
    main()

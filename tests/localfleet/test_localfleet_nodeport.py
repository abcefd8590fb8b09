"""The NodePort proxy: Services + EndpointSlices -> routing table, list+watch mirrors, and the listeners.

No API server here: the routing table is a pure function, the mirror runs against a scripted
list+watch fake, and the listeners are driven with routing tables directly.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from stt_localfleet.nodeport import ENDPOINT_SLICES, SERVICES, Mirror, NodePortProxy, Route, routing_table
from stt_operator.autoscaling.kubeapi import ApiError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORT = free_port()  # the "container port": the same on every pod address, as in a cluster
NODE_PORT = free_port()


def service(name: str = "demo", *, kind: str = "NodePort", ports: list[dict[str, Any]] | None = None,
            namespace: str = "stt") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "spec": {"type": kind, "clusterIP": "10.0.0.7", "ports": ports if ports is not None else [
                {"name": "grpc", "port": 50051, "targetPort": "grpc", "nodePort": 30051, "protocol": "TCP"},
                {"name": "http", "port": 8080, "targetPort": "http", "nodePort": 30080, "protocol": "TCP"}]}}


def endpoint(ip: str, *, ready: bool | None = True, serving: bool | None = None,
             terminating: bool | None = None) -> dict[str, Any]:
    conditions = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
                  if v is not None}
    return {"addresses": [ip], "conditions": conditions}


def endpoint_slice(name: str, *endpoints: dict[str, Any], service_name: str = "demo", namespace: str = "stt",
                   ports: Mapping[str, int] | None = None, address_type: str = "IPv4") -> dict[str, Any]:
    ports = ports if ports is not None else {"grpc": 50051, "http": 8080}
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": list(endpoints),
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports.items()]}


# The routing table.

def test_each_node_port_routes_to_the_ready_endpoints_on_its_named_port() -> None:
    slices = [endpoint_slice("demo-a", endpoint("127.0.0.3"), endpoint("127.0.0.2"),
                             endpoint("127.0.0.4", ready=False)),
              endpoint_slice("demo-b", endpoint("127.0.0.5", ready=None))]  # unset ready counts as ready
    table = routing_table([service()], slices)
    assert table == {
        30051: Route(30051, "stt/demo:grpc", (("127.0.0.2", 50051), ("127.0.0.3", 50051), ("127.0.0.5", 50051))),
        30080: Route(30080, "stt/demo:http", (("127.0.0.2", 8080), ("127.0.0.3", 8080), ("127.0.0.5", 8080))),
    }


def test_terminating_endpoints_serve_only_when_none_is_ready() -> None:
    draining = endpoint("127.0.0.2", ready=False, serving=True, terminating=True)
    gone = endpoint("127.0.0.3", ready=False, serving=False, terminating=True)
    ports = [{"name": "grpc", "port": 50051, "nodePort": 30051}]
    assert routing_table([service(ports=ports)], [endpoint_slice("s", draining, gone)])[30051].backends == (
        ("127.0.0.2", 50051),)
    with_ready = [endpoint_slice("s", draining, gone, endpoint("127.0.0.4"))]
    assert routing_table([service(ports=ports)], with_ready)[30051].backends == (("127.0.0.4", 50051),)
    not_ready = [endpoint_slice("s", endpoint("127.0.0.5", ready=False))]  # not terminating: never a fallback
    assert routing_table([service(ports=ports)], not_ready)[30051].backends == ()


def test_only_node_port_services_slices_of_the_same_service_and_tcp() -> None:
    services = [
        service("plain", kind="ClusterIP", ports=[{"name": "grpc", "port": 50051}]),
        service("lb", kind="LoadBalancer", ports=[{"name": "grpc", "port": 50051, "nodePort": 31000}]),
        service("nolbports", kind="LoadBalancer", ports=[{"name": "grpc", "port": 50051}]),
        service("dns", kind="NodePort", ports=[{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 31053}]),
        service("unnamed", ports=[{"port": 80, "nodePort": 31080}]),
    ]
    slices = [
        endpoint_slice("lb-1", endpoint("127.0.0.2"), service_name="lb"),
        endpoint_slice("lb-other-ns", endpoint("127.0.0.9"), service_name="lb", namespace="other"),
        endpoint_slice("lb-v6", endpoint("::2"), service_name="lb", address_type="IPv6"),
        endpoint_slice("unnamed-1", endpoint("127.0.0.3"), service_name="unnamed", ports={"": 8000}),
        endpoint_slice("unlabelled", endpoint("127.0.0.4")) | {"metadata": {"name": "x", "namespace": "stt"}},
    ]
    assert routing_table(services, slices) == {
        31000: Route(31000, "stt/lb:grpc", (("127.0.0.2", 50051),)),
        31080: Route(31080, "stt/unnamed:80", (("127.0.0.3", 8000),)),
    }


def test_a_slice_port_with_another_name_is_not_used() -> None:
    slices = [endpoint_slice("s", endpoint("127.0.0.2"), ports={"metrics": 9090})]
    assert routing_table([service()], slices)[30051].backends == ()


# The list+watch mirror.

class ScriptedApi:
    """Lists from `lists` (one answer per call) and watches from `watches` (one event list per call)."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[list[dict[str, Any]] | Exception]) -> None:
        self.lists = lists
        self.watches = watches
        self.watch_params: list[Mapping[str, str]] = []

    async def get(self, path: str) -> dict[str, Any]:
        assert path == SERVICES
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]

    async def watch(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        self.watch_params.append(dict(params or {}))
        script = self.watches.pop(0) if self.watches else None
        if script is None:
            await asyncio.Event().wait()  # an idle watch
            return
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event


def listing(version: str, *objects: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "items": list(objects)}


def event(kind: str, obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {"type": kind, "object": {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}}


async def until(check: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_mirror_lists_watches_resumes_and_relists_after_410_and_errors() -> None:
    a, b, c = service("a"), service("b"), service("c")
    api = ScriptedApi(
        lists=[listing("10", a), listing("20", b), listing("30", c)],
        watches=[
            [event("ADDED", b, "11"), event("BOOKMARK", {"metadata": {}}, "15")],  # then the stream ends
            [event("DELETED", a, "16"), {"type": "ERROR", "object": {"kind": "Status", "code": 410}}],
            ApiError(500, "boom"),  # after the relist at 20: back off, relist again
        ])
    changed = asyncio.Event()
    mirror = Mirror(api, SERVICES, changed=changed, retry_sec=0.01)
    task = asyncio.create_task(mirror.run())
    try:
        await until(lambda: len(api.watch_params) == 4)
        assert [p["resourceVersion"] for p in api.watch_params] == ["10", "15", "20", "30"]
        assert all(p["allowWatchBookmarks"] == "true" for p in api.watch_params)
        assert set(mirror.objects) == {"stt/c"} and mirror.synced and changed.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# The listeners.

@asynccontextmanager
async def named_server(host: str) -> AsyncIterator[None]:
    """Answers every line with '<host>:<line>' so the test sees which endpoint served it."""
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while line := await r.readline():
            w.write(f"{host}:{line.decode()}".encode())
            await w.drain()
        w.close()
    server = await asyncio.start_server(handle, host, PORT)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def ask(w: asyncio.StreamWriter, r: asyncio.StreamReader, text: str) -> str:
    w.write(f"{text}\n".encode())
    await w.drain()
    async with asyncio.timeout(5):
        return (await r.readline()).decode().strip()


def table(*hosts: str) -> dict[int, Route]:
    return {NODE_PORT: Route(NODE_PORT, "stt/demo:grpc", tuple((h, PORT) for h in hosts))}


@asynccontextmanager
async def proxy() -> AsyncIterator[NodePortProxy]:
    nodeport = NodePortProxy(ScriptedApi([listing("1")], []))
    try:
        yield nodeport
    finally:
        await nodeport.close()


async def test_round_robin_and_pinned_connections_while_an_endpoint_drains() -> None:
    async with named_server("127.0.0.2"), named_server("127.0.0.3"), proxy() as nodeport:
        await nodeport.apply(table("127.0.0.2", "127.0.0.3"))
        conns = [await asyncio.open_connection("127.0.0.1", NODE_PORT) for _ in range(4)]
        served = [await ask(w, r, "hi") for r, w in conns]
        assert sorted(served) == ["127.0.0.2:hi", "127.0.0.2:hi", "127.0.0.3:hi", "127.0.0.3:hi"]

        # 127.0.0.2 starts draining: no longer an endpoint. Its open connections keep working...
        await nodeport.apply(table("127.0.0.3"))
        pinned = [(r, w) for (r, w), s in zip(conns, served, strict=True) if s.startswith("127.0.0.2")]
        for r, w in pinned:
            assert await ask(w, r, "still there") == "127.0.0.2:still there"
        # ...while every new connection goes to the other one.
        fresh = [await asyncio.open_connection("127.0.0.1", NODE_PORT) for _ in range(3)]
        assert [await ask(w, r, "new") for r, w in fresh] == ["127.0.0.3:new"] * 3
        for _, w in conns + fresh:
            w.close()


async def test_no_endpoint_closes_the_connection_and_a_gone_service_closes_the_port() -> None:
    async with named_server("127.0.0.2"), proxy() as nodeport:
        await nodeport.apply(table())
        r, w = await asyncio.open_connection("127.0.0.1", NODE_PORT)
        async with asyncio.timeout(5):
            assert await r.read() == b""  # closed at once
        w.close()

        await nodeport.apply(table("127.0.0.2"))
        kept_r, kept_w = await asyncio.open_connection("127.0.0.1", NODE_PORT)
        assert await ask(kept_w, kept_r, "a") == "127.0.0.2:a"
        await nodeport.apply({})
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", NODE_PORT)
        assert await ask(kept_w, kept_r, "b") == "127.0.0.2:b"  # an established flow outlives its Service
        kept_w.close()


async def test_run_routes_what_the_mirrors_hold() -> None:
    svc = service(ports=[{"name": "grpc", "port": 50051, "nodePort": NODE_PORT}])
    piece = endpoint_slice("demo-1", endpoint("127.0.0.2"), ports={"grpc": PORT})

    class TwoResources(ScriptedApi):
        async def get(self, path: str) -> dict[str, Any]:
            return listing("5", svc) if path == SERVICES else listing("5", piece)

        async def watch(self, path: str, *, params: Mapping[str, str] | None = None
                        ) -> AsyncIterator[dict[str, Any]]:
            assert path in (SERVICES, ENDPOINT_SLICES)
            await asyncio.Event().wait()
            yield {}

    nodeport = NodePortProxy(TwoResources([], []))
    async with named_server("127.0.0.2"):
        runner = asyncio.create_task(nodeport.run())
        try:
            await until(lambda: bool(nodeport.listeners))
            r, w = await asyncio.open_connection("127.0.0.1", NODE_PORT)
            assert await ask(w, r, "hello") == "127.0.0.2:hello"
            w.close()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

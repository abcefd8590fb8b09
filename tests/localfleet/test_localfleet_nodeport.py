"""The NodePort proxy: round robin over ready pods, re-read endpoints, pinned existing connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from stt_localfleet.nodeport import NodePortProxy, endpoints


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod(name: str, ip: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "stt", "labels": {"app": "stt"},
                     **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})},
        "spec": {"containers": [{"ports": [{"name": "grpc", "containerPort": PORT}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


PORT = free_port()  # the "container port": the same on every pod address, as in a cluster
NODE_PORT = free_port()
SERVICE = {"metadata": {"name": "demo", "namespace": "stt"},
           "spec": {"type": "NodePort", "selector": {"app": "stt"},
                    "ports": [{"name": "grpc", "port": 50051, "targetPort": "grpc", "nodePort": NODE_PORT}]}}


class FakeApi:
    """The two list calls the proxy makes, over objects the test edits."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    async def list(self, path: str, **_: Any) -> list[dict[str, Any]]:
        return [SERVICE] if path.endswith("/services") else list(self.pods)


@asynccontextmanager
async def named_server(host: str) -> AsyncIterator[None]:
    """Answers every line with '<host>:<line>' so the test sees which pod served it."""
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
    return (await asyncio.wait_for(r.readline(), 5)).decode().strip()


def test_endpoints_are_ready_selected_not_terminating_pods() -> None:
    pods = [pod("a", "127.0.0.2"), pod("b", "127.0.0.3", ready=False), pod("c", "127.0.0.4", deleting=True),
            {**pod("d", "127.0.0.5"), "metadata": {"name": "d", "namespace": "stt", "labels": {"app": "x"}}}]
    assert endpoints(SERVICE, pods, port=SERVICE["spec"]["ports"][0]) == [("127.0.0.2", PORT)]


async def test_round_robin_and_pinned_connections_while_a_pod_drains() -> None:
    api = FakeApi([pod("a", "127.0.0.2"), pod("b", "127.0.0.3")])
    proxy = NodePortProxy(api, refresh_sec=0.05)  # type: ignore[arg-type]
    async with named_server("127.0.0.2"), named_server("127.0.0.3"):
        runner = asyncio.create_task(proxy.run())
        try:
            for _ in range(100):  # wait for the listener
                if proxy.listeners:
                    break
                await asyncio.sleep(0.02)
            conns = [await asyncio.open_connection("127.0.0.1", NODE_PORT) for _ in range(4)]
            served = [await ask(w, r, "hi") for r, w in conns]
            assert sorted(served) == ["127.0.0.2:hi", "127.0.0.2:hi", "127.0.0.3:hi", "127.0.0.3:hi"]

            # Pod a starts draining: not ready any more. Its open connections keep working...
            api.pods = [pod("a", "127.0.0.2", ready=False), pod("b", "127.0.0.3")]
            for _ in range(100):
                if [h for h, _ in proxy.listeners["stt/demo:grpc"].backends] == ["127.0.0.3"]:
                    break
                await asyncio.sleep(0.02)
            pinned = [(r, w) for (r, w), s in zip(conns, served, strict=True) if s.startswith("127.0.0.2")]
            for r, w in pinned:
                assert await ask(w, r, "still there") == "127.0.0.2:still there"
            # ...while every new connection goes to the ready pod.
            fresh = [await asyncio.open_connection("127.0.0.1", NODE_PORT) for _ in range(3)]
            assert [await ask(w, r, "new") for r, w in fresh] == ["127.0.0.3:new"] * 3
            for _, w in conns + fresh:
                w.close()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def test_no_ready_pod_refuses_the_connection() -> None:
    proxy = NodePortProxy(FakeApi([pod("a", "127.0.0.2", ready=False)]), refresh_sec=0.05)  # type: ignore[arg-type]
    runner = asyncio.create_task(proxy.run())
    try:
        for _ in range(100):
            if proxy.listeners:
                break
            await asyncio.sleep(0.02)
        r, w = await asyncio.open_connection("127.0.0.1", NODE_PORT)
        assert await asyncio.wait_for(r.read(), 5) == b""  # closed at once
        w.close()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_missing_node_port_is_allocated_and_served() -> None:
    bare = {**SERVICE, "spec": {**SERVICE["spec"], "ports": [{"name": "grpc", "port": 50051, "targetPort": "grpc"}]}}

    class AllocatingApi(FakeApi):
        service: dict[str, Any] = bare

        async def list(self, path: str, **_: Any) -> list[dict[str, Any]]:
            return [self.service] if path.endswith("/services") else list(self.pods)

        async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
            assert path == "/api/v1/namespaces/stt/services/demo"
            self.service = {**self.service, "spec": {**self.service["spec"], **patch["spec"]}}
            return self.service

    api = AllocatingApi([pod("a", "127.0.0.2")])
    proxy = NodePortProxy(api, refresh_sec=0.05)  # type: ignore[arg-type]
    async with named_server("127.0.0.2"):
        runner = asyncio.create_task(proxy.run())
        try:
            for _ in range(100):
                if proxy.listeners:
                    break
                await asyncio.sleep(0.02)
            allocated = api.service["spec"]["ports"][0]["nodePort"]
            assert 30000 <= allocated <= 32767
            r, w = await asyncio.open_connection("127.0.0.1", allocated)
            assert await ask(w, r, "hello") == "127.0.0.2:hello"
            w.close()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

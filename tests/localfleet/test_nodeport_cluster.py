"""The NodePort proxy process against the real control plane: nodePorts the API server allocated,
EndpointSlices the test writes itself (label `endpointslice.kubernetes.io/managed-by: test`, for a
Service without a selector, so the endpointslice controller leaves them alone).

kube-apiserver rejects EndpointSlice addresses in 127.0.0.0/8 ("may not be in the loopback range"),
which the first test pins down. So, as in the fleet, the endpoint lives in a cluster network of the
test's own (`podnet`: a network namespace where 10.244.0.0/16 is local): the echo server listens on
10.244.0.2 in there and the proxy, started with `--netns`, dials it there. No traffic leaves loopback
or that namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
import pytest_asyncio
from stt_localfleet import binaries, podnet
from stt_localfleet.controlplane import ControlPlane
from stt_localfleet.nodeport import CLUSTER_IP_NOTICE
from stt_localfleet.spawn import stop_process, tied_to_parent
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, credentials_from_kubeconfig, resource_path

T = TypeVar("T")
ECHO_IP: Final = podnet.pod_ip(1)  # 10.244.0.2, inside the test's cluster network
DEADLINE_SEC: Final = 30.0
MISSING: Final = [b.name for b in binaries.missing()]

pytestmark = [
    pytest.mark.slow,
    # `make test` sets STT_REQUIRE_CLUSTER: there ControlPlane's own error fails the tests instead.
    pytest.mark.skipif(bool(MISSING) and not os.environ.get("STT_REQUIRE_CLUSTER"), reason=f"control-plane binaries not built in {binaries.bin_dir()}: "
                       f"{', '.join(MISSING)} (run `stt-localfleet build`)"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def eventually(probe: Callable[[], Awaitable[T | None]], *, what: str, proxy: Proxy | None = None,
                     timeout: float = DEADLINE_SEC) -> T:
    """Poll `probe` until it returns something other than None; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if proxy is not None:
            proxy.check_alive()
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            tail = proxy.log_tail() if proxy is not None else ""
            pytest.fail(f"not within {timeout:g} s: {what}\n{tail}")
        await asyncio.sleep(0.05)


class Proxy:
    """`python -m stt_localfleet.nodeport --kubeconfig ...` as a child process with its log."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            pytest.fail(f"the proxy exited with code {self.process.returncode}:\n{self.log_tail()}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def netns() -> AsyncIterator[Path]:
    """The test's cluster network: held open by `podnet`'s holder process for the module."""
    holder = await asyncio.create_subprocess_exec(*tied_to_parent(podnet.holder_command()),
                                                  stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    assert holder.stdout is not None
    async with asyncio.timeout(10):
        assert (await holder.stdout.readline()).strip() == b"ready", "could not make the cluster network"
    try:
        yield Path(f"/proc/{holder.pid}/ns/net")
    finally:
        await stop_process(holder, timeout=10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def control_plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(workdir=tmp_path_factory.mktemp("controlplane")) as cp:
        yield cp


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    async with KubeApi(credentials_from_kubeconfig(control_plane.admin_kubeconfig)) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(control_plane: ControlPlane, netns: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Proxy]:
    log = tmp_path_factory.mktemp("nodeport") / "nodeport.log"
    argv = [sys.executable, "-m", "stt_localfleet.nodeport", "--kubeconfig", str(control_plane.admin_kubeconfig),
            "--netns", str(netns)]
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *tied_to_parent(argv), stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
    running = Proxy(process, log)
    try:
        yield running
    finally:
        await stop_process(process, timeout=10)


@pytest_asyncio.fixture(loop_scope="module")
async def own_namespace(api: KubeApi) -> AsyncIterator[str]:
    """A fresh namespace on this module's control plane (conftest's `namespace` is the session cluster's)."""
    name = f"nodeport-{uuid.uuid4().hex[:8]}"
    await api.create(resource_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}})
    yield name
    await api.delete(resource_path("v1", "namespaces", name=name))


@contextlib.asynccontextmanager
async def echo_server(netns: Path) -> AsyncIterator[int]:
    """A line echo server on ECHO_IP inside the cluster network; yields its port."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        writer.close()
    sock = podnet.socket_in(netns)
    sock.bind((ECHO_IP, 0))
    server = await asyncio.start_server(handle, sock=sock)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: str) -> str | None:
    """Send a line and read the answer; None when the connection was closed instead."""
    try:
        writer.write(f"{text}\n".encode())
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.readline()
    except ConnectionError:
        return None
    return answer.decode().strip() or None


async def connect(node_port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to 127.0.0.1:<node_port>; None when refused (or reset by a listener closing just then)."""
    try:
        return await asyncio.open_connection("127.0.0.1", node_port)
    except (ConnectionRefusedError, ConnectionResetError):
        return None


async def echoes(node_port: int) -> bool | None:
    """True when a line comes back through 127.0.0.1:<node_port> (for `eventually`)."""
    conn = await connect(node_port)
    if conn is None:
        return None
    answer = await ask(*conn, "hi")
    conn[1].close()
    return True if answer == "hi" else None


async def closed(node_port: int) -> bool | None:
    """True when nothing listens on 127.0.0.1:<node_port> any more (for `eventually`)."""
    conn = await connect(node_port)
    if conn is None:
        return True
    conn[1].close()
    return None


def service(name: str, port: int) -> dict[str, Any]:
    """A NodePort Service without a selector: its EndpointSlices are the test's to write."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "ports": [{"name": "echo", "port": 7000, "targetPort": port,
                                                    "protocol": "TCP"}]}}


def endpoint_slice(service_name: str, address: str, port: int, *, ready: bool) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-1", "labels": {
                "kubernetes.io/service-name": service_name, "endpointslice.kubernetes.io/managed-by": "test"}},
            "addressType": "IPv4", "ports": [{"name": "echo", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}]}


async def test_the_api_server_rejects_loopback_endpoint_addresses(api: KubeApi, own_namespace: str) -> None:
    path = resource_path("discovery.k8s.io/v1", "endpointslices", namespace=own_namespace)
    with pytest.raises(ApiError) as rejected:
        await api.create(path, endpoint_slice("echo", "127.0.0.2", 7000, ready=True))
    assert rejected.value.status == 422 and "loopback" in str(rejected.value)


async def test_node_port_follows_the_endpoint_slice_and_the_service(
        api: KubeApi, own_namespace: str, proxy: Proxy, netns: Path) -> None:
    async with echo_server(netns) as port:
        created = await api.create(resource_path("v1", "services", namespace=own_namespace), service("echo", port))
        node_port = int(created["spec"]["ports"][0]["nodePort"])  # allocated by the API server
        slices = resource_path("discovery.k8s.io/v1", "endpointslices", namespace=own_namespace)
        await api.create(slices, endpoint_slice("echo", ECHO_IP, port, ready=True))

        async def echoed() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
            conn = await connect(node_port)
            if conn is not None and await ask(*conn, "hello") == "hello":
                return conn
            if conn is not None:
                conn[1].close()
            return None

        kept = await eventually(echoed, what=f"an echo through 127.0.0.1:{node_port}", proxy=proxy)

        # Not ready any more: new connections are turned away, the open one keeps its endpoint.
        await api.merge_patch(f"{slices}/echo-1", {"endpoints": [{"addresses": [ECHO_IP],
                                                                  "conditions": {"ready": False}}]})

        async def turned_away() -> bool | None:
            conn = await connect(node_port)
            if conn is None:
                return True
            answer = await ask(*conn, "anyone?")
            conn[1].close()
            return True if answer is None else None

        await eventually(turned_away, what="new connections refused or closed", proxy=proxy)
        assert await ask(*kept, "still there") == "still there"

        # Ready again, then the Service goes: the port closes.
        await api.merge_patch(f"{slices}/echo-1", {"endpoints": [{"addresses": [ECHO_IP],
                                                                  "conditions": {"ready": True}}]})
        fresh = await eventually(echoed, what="an echo after the endpoint is ready again", proxy=proxy)
        fresh[1].close()
        await api.delete(resource_path("v1", "services", namespace=own_namespace, name="echo"))

        await eventually(lambda: closed(node_port), what=f"127.0.0.1:{node_port} closed after the Service was deleted", proxy=proxy)
        kept[1].close()
    assert CLUSTER_IP_NOTICE in proxy.log.read_text()


async def test_a_service_that_stops_being_node_port_stops_listening(
        api: KubeApi, own_namespace: str, proxy: Proxy, netns: Path) -> None:
    async with echo_server(netns) as port:
        services = resource_path("v1", "services", namespace=own_namespace)
        created = await api.create(services, service("flip", port))
        node_port = int(created["spec"]["ports"][0]["nodePort"])
        await api.create(resource_path("discovery.k8s.io/v1", "endpointslices", namespace=own_namespace),
                         endpoint_slice("flip", ECHO_IP, port, ready=True))

        await eventually(lambda: echoes(node_port), what=f"an echo through 127.0.0.1:{node_port}", proxy=proxy)
        # Back to ClusterIP: the ports come without a nodePort, and the API server releases it.
        await api.merge_patch(f"{services}/flip", {"spec": {"type": "ClusterIP", "ports": [
            {"name": "echo", "port": 7000, "targetPort": port, "protocol": "TCP"}]}})

        await eventually(lambda: closed(node_port), what=f"127.0.0.1:{node_port} closed after the type change", proxy=proxy)

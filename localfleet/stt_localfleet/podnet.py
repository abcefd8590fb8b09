"""The cluster network: a Linux network namespace of the fleet's own, where pods have real-looking IPs.

Kubernetes will not publish a loopback address as an endpoint (kube-apiserver rejects 127.0.0.0/8
in an EndpointSlice), so pods cannot simply live on 127.0.0.x of the host. Instead the fleet makes
a network namespace (`unshare --net`, as root) whose loopback device also carries `10.244.0.0/16`:
every address of that range is local there. The control plane, the kubelet and every pod run
inside it; pod `N` gets `10.244.0.N` (10.244.0.1 is the node and the API server's advertised
address). Nothing in it can reach, or be reached from, any other machine.

The host reaches the cluster the way a laptop reaches a cluster: the API server's port and every
nodePort are forwarded from the host's 127.0.0.1 by the NodePort proxy. Pod IPs are reachable only
from inside, as in a real cluster; `stt-localfleet exec --dir DIR -- CMD` runs a command in there,
and `socket_in` / `open_connection` / `aiohttp_connector` open connections in there from a host
process (a socket keeps the namespace it was created in, so it is made on a short-lived thread
that has entered the namespace).
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import os
import shutil
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

POD_CIDR: Final = ipaddress.ip_network("10.244.0.0/16")
NODE_IP: Final = "10.244.0.1"
CLONE_NEWNET: Final = 0x40000000

# Runs under `unshare --net`: bring up lo with the pod range, say so, and hold the namespace open.
_HOLDER: Final = f"""\
import signal, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "{NODE_IP}/{POD_CIDR.prefixlen}", "dev", "lo"], check=True)
print("ready", flush=True)
signal.sigwait({{signal.SIGTERM, signal.SIGINT}})
"""


class PodNetworkError(RuntimeError):
    """The namespace could not be made or entered; the message says what is needed."""


def holder_command() -> list[str]:
    """The command whose process owns the namespace (its /proc/PID/ns/net is the network)."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            raise PodNetworkError(f"`{tool}` is missing: the local fleet needs util-linux and iproute2")
    return ["unshare", "--net", "--", sys.executable, "-c", _HOLDER]


def enter_command(netns: Path | str, argv: Sequence[str]) -> list[str]:
    """`argv` run inside the namespace at `netns` (nsenter keeps the pid: it setns()es, then execs)."""
    return ["nsenter", f"--net={netns}", "--", *argv]


def pod_ip(index: int) -> str:
    """The index-th pod address (index 1 is 10.244.0.2: .1 is the node)."""
    address = POD_CIDR.network_address + 1 + index
    if address not in POD_CIDR or address == POD_CIDR.broadcast_address:
        raise PodNetworkError(f"pod index {index} is outside {POD_CIDR}")
    return str(address)


def _setns(path: Path | str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise PodNetworkError(f"cannot enter the cluster network {path}: {os.strerror(errno)} (needs root)")
    finally:
        os.close(fd)


def socket_in(netns: Path | str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside the namespace at `netns` (usable from any thread afterwards)."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        try:
            _setns(netns)  # this thread only; it ends right after
            made.append(socket.socket(family, kind))
        except (OSError, PodNetworkError) as exc:  # handed to the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=make, name="podnet-socket")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    sock = made[0]
    sock.setblocking(False)
    return sock


async def open_connection(netns: Path | str, host: str, port: int, **kwargs: Any
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`asyncio.open_connection` to `host:port` as seen from inside the cluster network."""
    sock = socket_in(netns)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, **kwargs)


def aiohttp_connector(netns: Path | str, **kwargs: Any) -> Any:
    """An aiohttp TCPConnector whose connections start inside the cluster network (pod IPs work)."""
    import aiohttp

    def factory(addr_info: Any) -> socket.socket:
        return socket_in(netns, addr_info[0], addr_info[1])  # (family, type, proto, ...)

    return aiohttp.TCPConnector(socket_factory=factory, **kwargs)

"""Container probes and lifecycle handlers: httpGet, tcpSocket, exec and grpc, as the kubelet runs them.

`Probe` is a parsed startup/liveness/readiness probe; `ProbeVerdict` applies its success and
failure thresholds (a verdict flips only after that many results in a row). `check` runs one
handler against the pod's address: HTTP(S) without certificate verification and without
following redirects (2xx and 3xx succeed), a TCP connect, a command run in the container by the
injected `run_exec`, or the gRPC health service. A lifecycle handler (`preStop`) is the same shape
minus the thresholds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

USER_AGENT: Final = "kube-probe/1.36"
# Runs a command in the container with a timeout; returns (exit code, output).
ExecRunner = Callable[[Sequence[str], float], Awaitable[tuple[int, str]]]


@dataclass(frozen=True)
class Probe:
    kind: str  # "startup", "liveness" or "readiness"
    handler: Mapping[str, Any] = field(default_factory=dict)
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, kind: str, probe: Mapping[str, Any]) -> Probe:
        return cls(kind=kind, handler=probe, initial_delay=float(probe.get("initialDelaySeconds") or 0),
                   period=float(probe.get("periodSeconds") or 10), timeout=float(probe.get("timeoutSeconds") or 1),
                   success_threshold=int(probe.get("successThreshold") or 1),
                   failure_threshold=int(probe.get("failureThreshold") or 3))


def container_probes(container: Mapping[str, Any]) -> dict[str, Probe]:
    """The container's probes by kind (only those it declares)."""
    return {kind: Probe.parse(kind, container[f"{kind}Probe"]) for kind in ("startup", "liveness", "readiness")
            if container.get(f"{kind}Probe")}


class ProbeVerdict:
    """The current result of one probe, flipped by `threshold` results in a row.

    Readiness and startup start as failure (not ready, not started), liveness as success.
    `failed_out` says that the last `failureThreshold` results were all failures, which for
    liveness and startup means the container is to be restarted.
    """

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.ok = probe.kind == "liveness"
        self._run = 0
        self._last: bool | None = None

    def record(self, ok: bool) -> bool:
        """Count one result; True when the verdict changed."""
        self._run = self._run + 1 if ok == self._last else 1
        self._last = ok
        threshold = self.probe.success_threshold if ok else self.probe.failure_threshold
        if ok != self.ok and self._run >= threshold:
            self.ok = ok
            return True
        return False

    @property
    def failed_out(self) -> bool:
        return self._last is False and self._run >= self.probe.failure_threshold


def resolve_port(port: int | str, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for item in container.get("ports") or ():
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')}")


async def check(handler: Mapping[str, Any], *, pod_ip: str, container: Mapping[str, Any], timeout: float,
                http: aiohttp.ClientSession, run_exec: ExecRunner) -> tuple[bool, str]:
    """Run one probe or lifecycle handler; (success, what went wrong)."""
    try:
        if "httpGet" in handler:
            return await _http(handler["httpGet"], pod_ip=pod_ip, container=container, timeout=timeout, http=http)
        if "tcpSocket" in handler:
            spec = handler["tcpSocket"]
            host, port = spec.get("host") or pod_ip, resolve_port(spec["port"], container)
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, ""
        if "exec" in handler:
            code, output = await run_exec(list(handler["exec"].get("command") or ()), timeout)
            return code == 0, "" if code == 0 else f"command exited with {code}: {output.strip()[:200]}"
        if "grpc" in handler:
            return await _grpc(handler["grpc"], pod_ip=pod_ip, timeout=timeout)
        if "sleep" in handler:
            await asyncio.sleep(float(handler["sleep"].get("seconds") or 0))
            return True, ""
    except TimeoutError:
        return False, f"timeout after {timeout:g}s"
    except (OSError, aiohttp.ClientError, ValueError) as exc:
        return False, str(exc) or type(exc).__name__
    return False, f"unsupported handler {sorted(handler)}"


async def _http(spec: Mapping[str, Any], *, pod_ip: str, container: Mapping[str, Any], timeout: float,
                http: aiohttp.ClientSession) -> tuple[bool, str]:
    scheme = str(spec.get("scheme") or "HTTP").lower()
    host = spec.get("host") or pod_ip
    port = resolve_port(spec.get("port", 80), container)
    path = str(spec.get("path") or "/")
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in spec.get("httpHeaders") or ()})
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    async with http.get(url, headers=headers, ssl=False, allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if 200 <= resp.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {resp.status}"


async def _grpc(spec: Mapping[str, Any], *, pod_ip: str, timeout: float) -> tuple[bool, str]:
    try:  # grpcio is the server's dependency, not necessarily the node's
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
    except ImportError:
        return False, "grpc probes need grpcio and grpcio-health-checking installed next to the kubelet"
    async with grpc.aio.insecure_channel(f"{pod_ip}:{int(spec['port'])}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=spec.get("service") or ""),
                                     timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return False, f"gRPC health check failed: {exc.code().name}"
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    return serving, "" if serving else "service unhealthy (responded with NOT_SERVING)"

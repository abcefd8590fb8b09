"""The kubelet against the local API server, running a stand-in server process (no model needed).

The stand-in honours the same flags and signals as stt-server: it binds --http-host/--http-port,
answers /health/ready 200 once up, and on SIGTERM answers 503 and exits after a short drain. It
also reports what it was given (config file content, env), so the test sees what the pod saw.
"""

from __future__ import annotations

import asyncio
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_localfleet.apiserver import LocalApiServer
from stt_localfleet.kubelet import Kubelet

STANDIN = '''
import http.server, json, os, signal, sys, threading, time
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1]
config = open(opt("--config")).read()
draining = threading.Event()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = 200, {}
        if self.path == "/health/ready":
            code = 503 if draining.is_set() else 200
        elif self.path == "/info":
            body = {"config": config, "token": os.environ.get("STT_CONTROL_TOKEN"), "pid": os.getpid()}
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer((opt("--http-host"), int(opt("--http-port"))), H)
def term(*_):
    draining.set()
    open(os.path.join(os.getcwd(), "sigterm"), "w").write(str(time.time()))
    threading.Timer(0.3, lambda: os._exit(0)).start()
signal.signal(signal.SIGTERM, term)
srv.serve_forever()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HTTP_PORT = free_port()


def deployment(replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "stt-server", "app.kubernetes.io/instance": "demo"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": "stt"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 5,
                "volumes": [{"name": "config", "configMap": {"name": "demo"}}],
                "containers": [{
                    "name": "server", "image": "stt-server:dev", "command": ["stt-server"],
                    "args": ["--config", "/etc/stt/config.yaml"],
                    "ports": [{"name": "grpc", "containerPort": free_port()},
                              {"name": "http", "containerPort": HTTP_PORT}],
                    "env": [{"name": "STT_CONTROL_TOKEN",
                             "valueFrom": {"secretKeyRef": {"name": "demo-token", "key": "token"}}}],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/stt"}],
                }],
            }},
        },
    }


async def until(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[tuple[KubeApi, Kubelet]]:
    script = tmp_path / "stt-server"
    script.write_text(f"#!{sys.executable}\n{STANDIN}")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    async with LocalApiServer(namespaces=["stt"]) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        async with KubeApi(credentials_from_kubeconfig(kubeconfig)) as api:
            await api.create(resource_path("v1", "secrets", namespace="stt"), {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-token"},
                "stringData": {"token": "t0k"}})
            await api.create(resource_path("v1", "configmaps", namespace="stt"), {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo"},
                "data": {"config.yaml": "limits: {max_sessions: 3}\n"}})
            kubelet = Kubelet(api, workdir=tmp_path / "pods", resync_sec=0.2, probe_sec=0.1,
                              executable=str(script))
            task = asyncio.create_task(kubelet.run())
            try:
                yield api, kubelet
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                assert all(p.process is None or p.process.exited for p in kubelet.pods.values())


async def ready_pods(api: KubeApi) -> list[dict[str, Any]]:
    pods = await api.list(resource_path("v1", "pods", namespace="stt"))
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))]


@pytest.mark.slow
async def test_kubelet_runs_scales_drains_and_replaces_pods(fleet: tuple[KubeApi, Kubelet]) -> None:
    api, kubelet = fleet
    dep_path = resource_path("apps/v1", "deployments", namespace="stt", name="demo")
    await api.create(resource_path("apps/v1", "deployments", namespace="stt"), deployment(2))

    pods = await until(lambda: _n(ready_pods(api), 2))
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert len(set(ips)) == 2 and all(ip.startswith("127.0.") and ip != "127.0.0.1" for ip in ips)
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "Deployment" for p in pods)
    async with aiohttp.ClientSession() as http, http.get(f"http://{ips[0]}:{HTTP_PORT}/info") as resp:
        info = await resp.json(content_type=None)
    assert info == {"config": "limits: {max_sessions: 3}\n", "token": "t0k", "pid": info["pid"]}
    status = (await until(lambda: _status(api, dep_path, 2)))
    assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 2

    # Scale down: one pod is marked deleting, gets SIGTERM, drains, and goes away.
    await api.merge_patch(dep_path, {"spec": {"replicas": 1}})
    remaining = await until(lambda: _n(api.list(resource_path("v1", "pods", namespace="stt")), 1))
    gone = {p["metadata"]["name"] for p in pods} - {remaining[0]["metadata"]["name"]}
    assert (kubelet.workdir / gone.pop() / "sigterm").exists(), "the removed pod got SIGTERM"
    await until(lambda: _status(api, dep_path, 1))

    # A pod deleted through the API is terminated and replaced, as the ReplicaSet would.
    victim = remaining[0]["metadata"]["name"]
    await api.delete(resource_path("v1", "pods", namespace="stt", name=victim))
    replaced = await until(lambda: _n(ready_pods(api), 1, exclude=victim))
    assert replaced[0]["metadata"]["name"] != victim
    assert (kubelet.workdir / victim / "sigterm").exists()


async def _n(pods_coro: Awaitable[list[dict[str, Any]]], n: int, *, exclude: str = "") -> list[dict[str, Any]] | None:
    pods = [p for p in await pods_coro if p["metadata"]["name"] != exclude]
    return pods if len(pods) == n else None


async def _status(api: KubeApi, path: str, ready: int) -> dict[str, Any] | None:
    status = (await api.get(path)).get("status") or {}
    return status if status.get("readyReplicas") == ready and status.get("replicas") == ready else None



class _EmptyApi:
    """An API server with nothing in it (the reconcile loop only lists)."""

    async def list(self, path: str, **_: Any) -> list[dict[str, Any]]:
        return []


async def test_reconcile_loop_stops_when_cancelled_as_it_is_woken(tmp_path: Path) -> None:
    # Python 3.11's asyncio.wait_for swallows a cancellation that lands as the awaited event fires;
    # the loop then ran forever and a fleet teardown hung. The wake and the cancel land together here.
    kubelet = Kubelet(_EmptyApi(), workdir=tmp_path, resync_sec=30.0)  # type: ignore[arg-type]
    loop_task = asyncio.create_task(kubelet._reconcile_loop())
    for _ in range(5):
        await asyncio.sleep(0)  # into the wait for a wake-up
    kubelet._wake.set()
    loop_task.cancel()
    done, _ = await asyncio.wait({loop_task}, timeout=5.0)
    assert loop_task in done and loop_task.cancelled(), "the reconcile loop ignored its cancellation"

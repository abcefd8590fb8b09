"""The autoscaler daemon inside a real kopf process, against the local API server over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_localfleet.apiserver import LocalApiServer
from test_autoscaling_timer import CRD, LABELS, NS, FakePod, pod_object


async def until(check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.2)
    return result


@pytest.mark.slow
async def test_kopf_runs_the_daemon_which_scales_and_reports(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(LocalApiServer(namespaces=[NS]))
        server.apply(CRD)
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        api = await stack.enter_async_context(KubeApi(credentials_from_kubeconfig(kubeconfig)))
        await api.create(resource_path("apps/v1", "deployments", namespace=NS), {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo"},
            "spec": {"replicas": 1, "selector": {"matchLabels": LABELS}, "template": {
                "metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "server", "env": [
                    {"name": "STT_CONTROL_TOKEN", "value": "t0k"}]}]}}}})
        fake = FakePod(pending=9)
        await fake.start(stack)
        pod = pod_object("demo-0", fake.port)
        await api.create(resource_path("v1", "pods", namespace=NS), pod)
        await api.merge_patch(resource_path("v1", "pods", namespace=NS, name="demo-0", subresource="status"),
                              {"status": pod["status"]})
        await api.create(resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=NS), {
            "apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer", "metadata": {"name": "demo"},
            "spec": {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3,
                                     "targetDecodePendingPerReplica": 3, "scrapeIntervalSeconds": 1}}})

        log = (tmp_path / "kopf.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kopf", "run", "--standalone", "-n", NS, "-m", "stt_operator.autoscaling.timer",
            env={**os.environ, "KUBECONFIG": str(kubeconfig)}, stdout=log, stderr=log)
        try:
            dep_path = resource_path("apps/v1", "deployments", namespace=NS, name="demo")

            async def scaled() -> bool:
                return (await api.get(dep_path))["spec"]["replicas"] == 3
            # 9 pending on 1 pod, target 3: ceil(3 * 1) = 3 (within maxReplicas and the 4-pod policy).
            await until(scaled)

            async def event() -> list[dict[str, Any]]:
                events = await api.list(resource_path("v1", "events", namespace=NS))
                return [e for e in events if e.get("reason") == "SuccessfulRescale"]
            rescale = (await until(event))[0]
            assert rescale["message"] == "New size: 3; reason: decode_pending above target"
            assert rescale["involvedObject"]["kind"] == "SttServer"

            # Turning autoscaling off stops the daemon's writes: replicas stay where they are.
            stt_path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=NS, name="demo")
            await api.merge_patch(stt_path, {"spec": {"autoscaling": {"enabled": False}}})
            await api.merge_patch(dep_path, {"spec": {"replicas": 2}})
            await asyncio.sleep(2.5)  # longer than the 1 s interval: a live daemon would have acted
            assert (await api.get(dep_path))["spec"]["replicas"] == 2
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log.close()

"""The autoscaler (its SttServer event handler and the shared scrape loop) inside a real kopf process,
against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from local_cluster import LocalCluster
from stt_operator.autoscaling.kubeapi import KubeApi, resource_path
from test_autoscaling_timer import FakePod, api, create_pod, deployment, sttserver, until

__all__ = ["api"]  # the fixture, shared with test_autoscaling_timer.py


@pytest.mark.slow
async def test_kopf_runs_the_autoscaler_which_scales_and_reports(api: KubeApi, local_cluster: LocalCluster,
                                                             namespace: str, tmp_path: Path) -> None:
    dep_path = resource_path("apps/v1", "deployments", namespace=namespace, name="demo")
    stt_path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace, name="demo")
    async with AsyncExitStack() as stack:
        await api.create(resource_path("apps/v1", "deployments", namespace=namespace),
                         deployment([{"name": "STT_CONTROL_TOKEN", "value": "t0k"}]))
        fake = FakePod(pending=9)
        await fake.start(stack)
        await create_pod(api, namespace, "demo-0", fake.port)
        await api.create(resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace), sttserver(
            {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "targetDecodePendingPerReplica": 3,
             "scrapeIntervalSeconds": 1}))

        log = stack.enter_context((tmp_path / "kopf.log").open("wb"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kopf", "run", "--standalone", "-n", namespace, "-m", "stt_operator.autoscaling.timer",
            env={**os.environ, "KUBECONFIG": str(local_cluster.kubeconfig)}, stdout=log, stderr=log,
            stdin=asyncio.subprocess.DEVNULL)
        stack.push_async_callback(stop, proc, api, stt_path)

        async def scaled() -> bool:
            return (await api.get(dep_path))["spec"]["replicas"] == 3
        # 9 pending on 1 pod, target 3: ceil(3 * 1) = 3 (within maxReplicas and the 4-pod policy).
        await until(scaled, what="the daemon to scale the Deployment to 3")

        async def event() -> list[dict[str, Any]]:
            events = await api.list(resource_path("v1", "events", namespace=namespace))
            return [e for e in events if e.get("reason") == "SuccessfulRescale"]
        rescale = (await until(event, what="a SuccessfulRescale Event"))[0]
        assert rescale["message"] == "New size: 3; reason: decode_pending above target"
        assert rescale["involvedObject"]["kind"] == "SttServer"

        # Turning autoscaling off stops the daemon's scrapes and writes: replicas stay where they are.
        await api.merge_patch(stt_path, {"spec": {"autoscaling": {"enabled": False}}})
        await api.merge_patch(dep_path, {"spec": {"replicas": 2}})
        await _quiet(fake, passes=3)
        assert (await api.get(dep_path))["spec"]["replicas"] == 2

        # On again, it reads the live spec and acts at once.
        await api.merge_patch(stt_path, {"spec": {"autoscaling": {"enabled": True}}})
        await until(scaled, what="the re-enabled daemon to scale back to 3")


async def _quiet(fake: FakePod, *, passes: int, interval: float = 1.0) -> None:
    """Wait until the pod has not been scraped for `passes` scrape intervals (an enabled daemon scrapes every one)."""
    async def silent() -> bool:
        seen = fake.scrapes
        await asyncio.sleep(interval * passes)
        return fake.scrapes == seen
    await until(silent, what=f"the daemon to stop scraping for {passes} intervals", timeout=20)


async def stop(proc: asyncio.subprocess.Process, api: KubeApi, stt_path: str) -> None:
    """Stop kopf, then drop its finalizer so that the namespace can go."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if await api.get_or_none(stt_path) is not None:
        await api.merge_patch(stt_path, {"metadata": {"finalizers": None}})

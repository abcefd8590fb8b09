"""One pod worker against a fake API: what it writes (status, Events, the final DELETE) and when it stops."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from stt_localfleet.backoff import CrashBackoff
from stt_localfleet.containerstart import NodeServices
from stt_localfleet.events import EventRecorder
from stt_localfleet.pods import AddressPool
from stt_localfleet.podworker import PodWorker
from stt_localfleet.sources import TokenCache
from stt_operator.autoscaling.kubeapi import ApiError


class FakeApi:
    """Records every write; every GET is a 404 (the pods here reference nothing)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Any]] = []

    async def get(self, path: str) -> dict[str, Any]:
        raise ApiError(404, "not found")

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("POST", path, obj))
        return dict(obj)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("PATCH", path, patch))
        return {}

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.writes.append((method, path, body))
        return None

    def statuses(self) -> list[dict[str, Any]]:
        return [w[2]["status"] for w in self.writes if w[0] == "PATCH" and w[1].endswith("/status")]


@pytest_asyncio.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[FakeApi, NodeServices]]:
    api = FakeApi()
    async with aiohttp.ClientSession() as http:
        yield api, NodeServices(
            api=api, node_name="localfleet", node_ip="127.0.0.1", workdir=tmp_path, service_env={},  # type: ignore[arg-type]
            addresses=AddressPool("127.0.0.0/24", node_ip="127.0.0.1"), events=EventRecorder(api, host="localfleet"),  # type: ignore[arg-type]
            tokens=TokenCache(api), http=http, backoff=CrashBackoff(scale=0.01), image_paths=(),  # type: ignore[arg-type]
            allocatable={"cpu": "2", "memory": "1Gi"}, retry_sec=0.05)


def pod(container: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "stt", "uid": "uid-1", "generation": 1, **meta},
            "spec": {"containers": [{"name": "c", **container}], "terminationGracePeriodSeconds": 5},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}


async def until(check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return result


def waiting_reason(status: dict[str, Any]) -> str:
    return str(status["containerStatuses"][0]["state"].get("waiting", {}).get("reason", ""))


async def test_an_unknown_image_waits_then_deletion_ends_with_a_uid_precondition(
        services: tuple[FakeApi, NodeServices]) -> None:
    api, node = services
    worker = PodWorker(node, pod({"image": "nginx:1.27"}))
    task = asyncio.create_task(worker.run())
    status = await until(lambda: next((s for s in api.statuses() if waiting_reason(s) == "ImageNotLocal"), None))
    assert status["phase"] == "Pending" and status["podIP"] == "127.0.0.2" and status["hostIP"] == "127.0.0.1"
    assert status["conditions"][0]["type"] == "PodScheduled"  # the scheduler's, carried over
    writes = len(api.writes)
    await asyncio.sleep(0.3)  # retries of the same failure write no new status
    assert not any(w[0] == "PATCH" and w[1].endswith("/status") for w in api.writes[writes:])

    worker.update(pod({"image": "nginx:1.27"}, deletionTimestamp="2026-01-01T00:00:00Z",
                      deletionGracePeriodSeconds=30))
    await asyncio.wait_for(task, 10)
    assert api.statuses()[-1]["phase"] == "Failed"  # deleted before it ever ran
    assert api.writes[-1] == ("DELETE", "/api/v1/namespaces/stt/pods/p", {
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}})
    await node.events.flush()
    reasons = {w[2]["reason"] for w in api.writes if w[0] == "POST" and "/events" in w[1]}
    assert reasons == {"Failed"}


@pytest.mark.skipif(os.geteuid() != 0, reason="containers run in mount namespaces (root)")
async def test_a_crashing_container_restarts_then_backs_off(services: tuple[FakeApi, NodeServices]) -> None:
    api, node = services
    worker = PodWorker(node, pod({"image": "stt-operator:dev", "command": ["sh", "-c", "exit 3"]}))
    task = asyncio.create_task(worker.run())
    try:
        status = await until(lambda: next((s for s in api.statuses() if waiting_reason(s) == "CrashLoopBackOff"),
                                          None))
        container = status["containerStatuses"][0]
        assert container["restartCount"] >= 1 and container["lastState"]["terminated"]["exitCode"] == 3
        assert status["phase"] == "Running"
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(task, 10)
    assert not any(w[0] == "DELETE" for w in api.writes), "a node shutdown leaves the Pod object alone"


async def test_the_worker_stops_when_cancelled_as_it_is_woken(services: tuple[FakeApi, NodeServices]) -> None:
    # Python 3.11's asyncio.wait_for swallows a cancellation that lands as the awaited event fires; a
    # loop built on it never stopped. The wake and the cancel land together here.
    api, node = services
    worker = PodWorker(node, pod({"image": "nginx:1.27"}))
    task = asyncio.create_task(worker.run())
    await until(api.statuses)
    worker.wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert task in done and task.cancelled(), "the worker ignored its cancellation"


@pytest.mark.skipif(os.geteuid() != 0, reason="containers run in mount namespaces (root)")
async def test_a_pod_that_ran_under_an_earlier_kubelet_is_restarted_on_its_old_ip(
        services: tuple[FakeApi, NodeServices]) -> None:
    api, node = services
    adopted = pod({"image": "stt-operator:dev", "command": ["sleep", "30"]})
    adopted["status"].update({"phase": "Running", "podIP": "127.0.0.9", "containerStatuses": [
        {"name": "c", "restartCount": 2, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]})
    worker = PodWorker(node, adopted)
    task = asyncio.create_task(worker.run())
    try:
        status = await until(lambda: next((s for s in api.statuses()
                                           if "running" in s["containerStatuses"][0]["state"]), None))
        container = status["containerStatuses"][0]
        assert container["restartCount"] == 3 and status["podIP"] == "127.0.0.9"
        assert container["lastState"]["terminated"]["reason"] == "Unknown"
        assert container["lastState"]["terminated"]["exitCode"] == 255
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(task, 10)


async def test_a_wake_during_the_status_write_starts_the_next_pass(services: tuple[FakeApi, NodeServices],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe's first success often lands while the previous pass is still writing status; that wake
    must not be lost to the long resync deadline (it once delayed every new pod's Ready by 60 s)."""
    _, node = services
    # Every deadline of its own is far away: only the wake can start the second pass in time.
    worker = PodWorker(dataclasses.replace(node, retry_sec=30.0, volume_resync_sec=30.0),
                       pod({"image": "registry.example/other:1"}))
    passes: list[float] = []
    sync = worker._sync

    async def counting_sync() -> None:
        passes.append(time.monotonic())
        await sync()
    publish = worker._publish

    async def publish_then_wake(**kwargs: Any) -> None:
        await publish(**kwargs)
        if len(passes) == 1:
            worker.wake()  # arrives after the pass, before the worker goes to sleep
    monkeypatch.setattr(worker, "_sync", counting_sync)
    monkeypatch.setattr(worker, "_publish", publish_then_wake)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: len(passes) >= 2, timeout=2.0)
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(task, 10)

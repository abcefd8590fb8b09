"""`apply_child` against the real kube-apiserver: what it writes, and when it writes nothing.

The real server canonicalises quantities ("0.5" CPU is stored as "500m", 1024Mi as "1Gi") and fills
defaults (a Deployment's strategy, a Service's clusterIP and protocol), so "nothing to do" must be
decided on meaning, not on spelling: a pass over an unchanged object sends no write at all.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from local_cluster import LocalCluster
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_operator.reconcile import apply_child, last_applied_of

LABELS = {"app": "x"}


def deployment(namespace: str) -> dict[str, Any]:
    # Paused from the start, the deployment controller makes no ReplicaSet: no pods, only the object.
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": namespace},
        "spec": {"replicas": 1, "paused": True, "selector": {"matchLabels": LABELS},
                 "template": {"metadata": {"labels": LABELS}, "spec": {
                     "containers": [{"name": "s", "image": "i:1", "resources": {
                         "requests": {"cpu": "0.5", "memory": "1024Mi"},
                         "limits": {"cpu": 1, "memory": "2048Mi"}},
                         "ports": [{"name": "grpc", "containerPort": 50051}]}]}}},
    }


def service(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": namespace},
            "spec": {"type": "NodePort", "selector": LABELS,
                     "ports": [{"name": "grpc", "port": 50051, "targetPort": "grpc"}]}}


class RecordingApi(KubeApi):
    """The operator's client, noting every request that is not a read."""

    writes: list[str]

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET":
            self.writes.append(f"{method} {path}")
        return await super().request(method, path, **kwargs)


async def settled(api: KubeApi, path: str, *, timeout: float = 20.0) -> str:
    """The resourceVersion once the controllers are done with the object (status caught up with spec)."""
    deadline = time.monotonic() + timeout
    while True:
        obj = await api.get(path)
        meta, status = obj["metadata"], obj.get("status") or {}
        if "generation" not in meta or status.get("observedGeneration") == meta["generation"]:
            return str(meta["resourceVersion"])
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not settle within {timeout:g} s: {status}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def api(local_cluster: LocalCluster) -> AsyncIterator[RecordingApi]:
    async with RecordingApi(credentials_from_kubeconfig(local_cluster.kubeconfig)) as client:
        client.writes = []
        yield client


async def test_unchanged_objects_write_nothing_although_the_server_rewrites_them(api: RecordingApi,
                                                                                namespace: str) -> None:
    for desired, (api_version, plural) in ((deployment(namespace), ("apps/v1", "deployments")),
                                           (service(namespace), ("v1", "services"))):
        created = await apply_child(api, desired)
        assert created.action == "created"
        path = resource_path(api_version, plural, namespace=namespace, name="x")
        before = await settled(api, path)
        api.writes.clear()
        again = await apply_child(api, copy.deepcopy(desired))
        assert (again.action, api.writes) == ("unchanged", []), f"{desired['kind']}: a second apply wrote"
        assert (await api.get(path))["metadata"]["resourceVersion"] == before
    stored = (await api.get(resource_path("apps/v1", "deployments", namespace=namespace, name="x")))
    # What made the naive comparison fail: the server's spelling of the same quantities.
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m", "memory": "1Gi"}


async def test_a_changed_quantity_is_written(api: KubeApi, namespace: str) -> None:
    desired = deployment(namespace)
    await apply_child(api, desired)
    changed = copy.deepcopy(desired)
    changed["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "600m"
    applied = await apply_child(api, changed)
    assert applied.action == "updated"
    assert applied.obj["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "600m"


async def test_replicas_carried_over_from_the_autoscaler_write_nothing(api: KubeApi, namespace: str) -> None:
    desired = deployment(namespace)
    assert (await apply_child(api, desired)).action == "created"
    path = resource_path("apps/v1", "deployments", namespace=namespace, name="x")
    await api.merge_patch(path, {"spec": {"replicas": 3}})  # the autoscaler
    before = await settled(api, path)

    # The reconciler carries the live count over: nothing to change, so no write and no Event.
    carried = copy.deepcopy(desired)
    carried["spec"]["replicas"] = 3
    assert (await apply_child(api, carried)).action == "unchanged"
    assert (await api.get(path))["metadata"]["resourceVersion"] == before

    # A real change is written, and the record catches up with it.
    changed = copy.deepcopy(carried)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "i:2"
    applied = await apply_child(api, changed)
    assert applied.action == "updated"
    assert (last_applied_of(applied.obj) or {})["spec"]["replicas"] == 3


class RacingApi(RecordingApi):
    """Two clients' reads of a missing object both answer before either creates it."""

    barrier: asyncio.Barrier

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        found = await super().get_or_none(path)
        if found is None:
            async with asyncio.timeout(10):
                await self.barrier.wait()
        return found


async def test_a_create_race_is_a_real_409_and_ends_in_one_object(local_cluster: LocalCluster,
                                                                   namespace: str) -> None:
    credentials = credentials_from_kubeconfig(local_cluster.kubeconfig)
    barrier = asyncio.Barrier(2)
    async with RacingApi(credentials) as first, RacingApi(credentials) as second:
        for client in (first, second):
            client.writes, client.barrier = [], barrier
        results = await asyncio.gather(apply_child(first, service(namespace)), apply_child(second, service(namespace)))
    # Both sent a create; the API server took one and refused the other, which then found it in place.
    assert first.writes[0].startswith("POST") and second.writes[0].startswith("POST")
    assert sorted(r.action for r in results) == ["created", "unchanged"]
    assert len({r.obj["metadata"]["uid"] for r in results}) == 1

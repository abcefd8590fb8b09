"""One autoscaling pass against the real kube-apiserver and real (loopback) pod control planes.

The pods are API objects bound to a node no kubelet serves, so nothing runs them: their control
planes are this test's loopback servers, whose load the test sets. Their Deployment is paused from
the start, so the real deployment controller makes no ReplicaSet that would adopt or replace them.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, Final

import pytest
from aiohttp import web
from local_cluster import LocalCluster
from stt_operator.autoscaling.behavior import DEFAULT_SCALE_DOWN, Behavior
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_operator.autoscaling.timer import (
    AutoscalerState,
    autoscale_once,
    note_spec_replicas,
    override_message,
    policy_from_spec,
    read_control_token,
)
from stt_operator.spec import parse_spec

LABELS: Final = {"app.kubernetes.io/name": "stt-server", "app.kubernetes.io/instance": "demo"}
IMAGE: Final = "ghcr.io/stt-fleet/stt-server:0.1.0"
NO_KUBELET_NODE: Final = "stt-test-no-kubelet"  # no Node of that name: the scheduler and kubelet leave its pods be


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakePod:
    """A control plane answering /health and /metrics.json with the token; load is settable."""

    def __init__(self, *, pending: float, healthy: bool = True) -> None:
        self.pending, self.healthy, self.port = pending, healthy, free_port()
        self.scrapes = 0

    async def start(self, stack: AsyncExitStack) -> None:
        async def health(req: web.Request) -> web.StreamResponse:
            if req.headers.get("Authorization") != "Bearer t0k":
                return web.json_response({}, status=401)
            return web.json_response({"reasons": [] if self.healthy else ["workers unhealthy"]},
                                     status=200 if self.healthy else 503)

        async def metrics(req: web.Request) -> web.StreamResponse:
            self.scrapes += 1
            return web.json_response({"metrics": {"decode_pending": self.pending, "active_sessions": 1}})
        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/metrics.json", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        stack.push_async_callback(runner.cleanup)


def pod_object(name: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": LABELS},
            "spec": {"nodeName": NO_KUBELET_NODE, "automountServiceAccountToken": False,
                     "containers": [{"name": "server", "image": IMAGE,
                                     "ports": [{"name": "http", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def deployment(env: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo"},
            "spec": {"replicas": 1, "paused": True, "selector": {"matchLabels": LABELS}, "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "server", "image": IMAGE, "env": env}]}}}}


def sttserver(autoscaling: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer", "metadata": {"name": "demo"},
            "spec": {"image": IMAGE, "autoscaling": autoscaling}}


async def create_pod(api: KubeApi, namespace: str, name: str, port: int) -> None:
    """A Pod as the kubelet would report it: create drops status, the status subresource sets it."""
    pod = pod_object(name, port)
    await api.create(resource_path("v1", "pods", namespace=namespace), pod)
    await api.merge_patch(resource_path("v1", "pods", namespace=namespace, name=name, subresource="status"),
                          {"status": pod["status"]})


async def until(check: Any, *, what: str, timeout: float = 30.0) -> Any:
    """Await `check()` until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)
    return result


@pytest.fixture
async def api(local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> AsyncIterator[KubeApi]:
    async with KubeApi(credentials_from_kubeconfig(local_cluster.kubeconfig)) as client:
        # Pods are admitted only once the serviceaccount controller has made `default` here.
        sa = resource_path("v1", "serviceaccounts", namespace=namespace, name="default")

        async def has_sa() -> bool:
            return await client.get_or_none(sa) is not None
        await until(has_sa, what=f"ServiceAccount {namespace}/default")
        try:
            yield client
        finally:
            # Nothing runs the pods: delete them at once rather than wait for a kubelet that never comes.
            for pod in await client.list(resource_path("v1", "pods", namespace=namespace)):
                await client.delete(resource_path("v1", "pods", namespace=namespace, name=pod["metadata"]["name"]),
                                    grace_period=0)


async def test_a_pass_scales_up_on_queue_depth_then_down_when_idle(api: KubeApi, namespace: str) -> None:
    autoscaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 4, "targetDecodePendingPerReplica": 2,
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}
    await api.create(resource_path("v1", "secrets", namespace=namespace), {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok"}, "stringData": {"token": "t0k"}})
    dep = deployment([{"name": "STT_CONTROL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}])
    dep["spec"]["replicas"] = 2
    await api.create(resource_path("apps/v1", "deployments", namespace=namespace), dep)
    body = await api.create(resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace),
                            sttserver(autoscaling))
    busy = [FakePod(pending=8), FakePod(pending=8), FakePod(pending=0, healthy=False)]
    events: list[tuple[str, str]] = []

    async def record(type_: str, reason: str, message: str) -> None:
        events.append((reason, message))
    state = AutoscalerState()
    spec = parse_spec(body)
    dep_path = resource_path("apps/v1", "deployments", namespace=namespace, name="demo")
    stt_path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace, name="demo")
    async with AsyncExitStack() as stack:
        for i, fake in enumerate(busy):
            await fake.start(stack)
            await create_pod(api, namespace, f"demo-{i}", fake.port)

        decision = await autoscale_once(api, body, state=state, spec=spec,
                                        post_event=record, now=1000.0)
        # 16 pending over 2 healthy pods + 1 unhealthy pod (missing metric, counted as 0 on a scale-up):
        # ceil(16 / 2) = 8, bounded by maxReplicas 4.
        assert decision is not None and decision.desired_replicas == 4
        assert (await api.get(dep_path))["spec"]["replicas"] == 4
        assert events == [("SuccessfulRescale", "New size: 4; reason: decode_pending above target")]
        status = (await api.get(stt_path))["status"]
        assert status["autoscaling"]["desiredReplicas"] == 4
        assert status["autoscaling"]["lastScaleTime"] == state.last_scale_time is not None
        assert status["autoscaling"]["unhealthyPods"] == [
            {"name": "demo-2", "reason": "/health answered 503: workers unhealthy"}]
        assert status["autoscaling"]["currentMetrics"][0]["averageValue"] == 8.0
        scaling = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
        assert (scaling["status"], scaling["reason"]) == ("True", "ValidMetricFound")

        # Idle now. The window is 0 s, but 2 pods were added 5 s ago: the 100 %/15 s policy counts
        # from the period's start (2 pods), so it may go to 0 -> bounded by minReplicas 1.
        for fake in busy:
            fake.pending = 0
        body = await api.get(stt_path)
        # Meanwhile the reconciler adds a condition: the autoscaler holds a stale copy, and its
        # write must not drop the reconciler's condition (resourceVersion precondition, re-read).
        reconciler_conditions = [*body["status"]["conditions"],
                                 {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "",
                                  "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        await api.merge_patch(f"{stt_path}/status", {"status": {"conditions": reconciler_conditions}})
        decision = await autoscale_once(api, body, state=state, spec=spec,
                                        post_event=record, now=1005.0)
        assert decision is not None and decision.desired_replicas == 1
        kept = {c["type"] for c in (await api.get(stt_path))["status"]["conditions"]}
        assert kept == {"ScalingActive", "Ready"}
        assert decision.reason == "All metrics below target"
        assert (await api.get(dep_path))["spec"]["replicas"] == 1
        assert events[-1] == ("SuccessfulRescale", "New size: 1; reason: All metrics below target")

        # Passes that change nothing write nothing (the HPA's updateStatusIfNeeded).
        for now in (1006.0, 1007.0):
            body = await api.get(stt_path)
            await autoscale_once(api, body, state=state, spec=spec, post_event=record, now=now)
        before = (await api.get(stt_path))["metadata"]["resourceVersion"]
        await autoscale_once(api, await api.get(stt_path), state=state, spec=spec, post_event=record, now=1008.0)
        assert (await api.get(stt_path))["metadata"]["resourceVersion"] == before


def test_policy_from_the_parsed_spec_defaults_behavior_like_the_hpa() -> None:
    spec = parse_spec(sttserver({"enabled": True, "minReplicas": 2, "maxReplicas": 6,
                                 "targetDecodePendingPerReplica": 3, "targetActiveSessionsPerReplica": 8}))
    policy = policy_from_spec(spec.autoscaling)
    assert (policy.min_replicas, policy.max_replicas) == (2, 6)
    assert (policy.target_decode_pending, policy.target_active_sessions) == (3.0, 8.0)
    assert policy.behavior == Behavior()
    windowed = parse_spec(sttserver({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}))
    assert policy_from_spec(windowed.autoscaling).behavior.scale_down == \
        replace(DEFAULT_SCALE_DOWN, stabilization_window_seconds=0)


async def test_control_token_is_found_as_env_from_secret_or_as_a_mounted_file(api: KubeApi, namespace: str) -> None:
    await api.create(resource_path("v1", "secrets", namespace=namespace), {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ctl"}, "stringData": {"token": "from-secret"}})
    env_ref = {"spec": {"template": {"spec": {"containers": [{"env": [
        {"name": "STT_CONTROL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "ctl", "key": "token"}}}]}]}}}}
    mounted = {"spec": {"template": {"spec": {
        "volumes": [{"name": "auth", "secret": {"secretName": "ctl", "items": [{"key": "token", "path": "ctl"}]}}],
        "containers": [{"volumeMounts": [{"name": "auth", "mountPath": "/var/run/stt"}],
                        "env": [{"name": "STT_AUTH__CONTROL_TOKEN_FILE", "value": "/var/run/stt/ctl"}]}]}}}}
    assert await read_control_token(api, env_ref, namespace) == "from-secret"
    assert await read_control_token(api, mounted, namespace) == "from-secret"
    assert await read_control_token(api, {"spec": {}}, namespace) is None


def test_a_changed_spec_replicas_is_an_override_until_the_autoscaler_keeps_that_count() -> None:
    state = AutoscalerState()
    assert not note_spec_replicas(state, spec_replicas=1, kept=2)  # the manifest's standing value: no request
    assert override_message(state, 2) is None
    assert note_spec_replicas(state, spec_replicas=3, kept=2)  # kubectl scale --replicas=3
    assert "spec.replicas=3 is ignored while spec.autoscaling.enabled is true" in (override_message(state, 2) or "")
    assert not note_spec_replicas(state, spec_replicas=3, kept=2)  # said once
    assert override_message(state, 2) is not None  # and kept in the condition
    assert not note_spec_replicas(state, spec_replicas=3, kept=3)  # the autoscaler got there itself
    assert override_message(state, 3) is None
    assert not note_spec_replicas(state, spec_replicas=2, kept=2)  # asking for what it keeps is no override

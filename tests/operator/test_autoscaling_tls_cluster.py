"""The autoscaler on the local cluster: scraping TLS control planes, and saying when it overrides `kubectl scale`.

The operator is installed with helm as a pod in a namespace of its own (its chart's RBAC), the
server pods are real `stt-server` processes on the process kubelet.

1. With `spec.secrets.tls` the server's control plane serves HTTPS only. The TLS Secret is made as
   cert-manager makes one for a Service (`tls.crt`, `tls.key`, `ca.crt`; the certificate names
   `<name>.<namespace>.svc` and the other Service names, and 127.0.0.1 only so this test can reach
   the gRPC NodePort from the host); no pod IP is in it. Four open streams (silence: sessions, not
   decode work, on a 2-core node) against a target of 2 sessions per replica must scale to 2.
2. `kubectl scale` on an autoscaled SttServer sets spec.replicas, which the autoscaler overrides:
   a Warning Event `ScaleOverridden` and the ScalingActive condition say so, and its count stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from local_cluster import LocalCluster, operator_installed, until_async
from serving_certs import issue, service_dns_names
from stt_localfleet.fleet import CRDS_DIR
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_server.client import SttClient, WavAudio

SAMPLE = CRDS_DIR / "samples" / "demo.yaml"
NAME = "stt-tls"
T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def sttserver(namespace: str, *, tls_secret: str | None) -> dict[str, Any]:
    """The demo sample, small, autoscaling 1..2 on open sessions (2 per replica), 1 s scrapes."""
    doc = next(d for d in yaml.safe_load_all(Path(SAMPLE).read_text()) if d and d.get("kind") == "SttServer")
    doc["metadata"] = {"name": NAME, "namespace": namespace}
    spec = doc["spec"]
    spec["service"].pop("nodePort", None)  # let the API server allocate one
    spec["resources"] = {"requests": {"cpu": "0.1", "memory": "256Mi"}}
    spec["autoscaling"] = {
        "enabled": True, "minReplicas": 1, "maxReplicas": 2,
        "targetDecodePendingPerReplica": 8, "targetActiveSessionsPerReplica": 2, "scrapeIntervalSeconds": 1,
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}},
    }
    if tls_secret:
        spec["secrets"] = {"tls": {"secretName": tls_secret}}
    return doc


@contextlib.contextmanager
def operator_for(cluster: LocalCluster, namespace: str) -> Iterator[None]:
    """The operator, helm-installed in a namespace of its own, watching the test's namespace."""
    operator_namespace = cluster.new_namespace("as-op")
    try:
        with operator_installed(cluster, release="as-op", namespace=operator_namespace,
                                values=[f"watchNamespaces={{{namespace}}}", "image.tag=dev"]):
            yield
    finally:
        cluster.delete_namespace(operator_namespace)


def scaling_active(stt: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (stt.get("status") or {}).get("conditions") or () if c["type"] == "ScalingActive"), None)


async def test_a_tls_server_is_scraped_over_https_and_scales_up_under_load(
        local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> None:
    cert = issue(dns_names=service_dns_names(NAME, namespace), ips=["127.0.0.1"])
    stt_path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace, name=NAME)
    dep_path = resource_path("apps/v1", "deployments", namespace=namespace, name=NAME)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(operator_for(local_cluster, namespace))
        api = await stack.enter_async_context(KubeApi(credentials_from_kubeconfig(local_cluster.kubeconfig)))
        local_cluster.apply([cert.secret("stt-tls"), sttserver(namespace, tls_secret="stt-tls")], namespace=namespace)

        async def metrics_found() -> dict[str, Any] | None:
            condition = scaling_active(await api.get(stt_path))
            return condition if condition and condition["reason"] == "ValidMetricFound" else None
        # Before the fix this never came: plain HTTP to an HTTPS-only control plane gets no metrics.
        await until_async(local_cluster, api, namespace, metrics_found, what="ScalingActive/ValidMetricFound over HTTPS",
                    timeout=150)
        assert (await api.get(stt_path))["status"]["autoscaling"]["unhealthyPods"] == []

        service = await api.get(resource_path("v1", "services", namespace=namespace, name=NAME))
        target = f"127.0.0.1:{next(p['nodePort'] for p in service['spec']['ports'] if p['name'] == 'grpc')}"
        silence = WavAudio(bytes(16000 * 2 * 120), 16000)  # two minutes, streamed in real time
        client = await stack.enter_async_context(SttClient(target, root_certificates=cert.ca_pem.encode()))
        await client.wait_ready(30)
        streams = [asyncio.create_task(client.stream(silence, realtime=True)) for _ in range(4)]

        async def cancel_streams() -> None:
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
        stack.push_async_callback(cancel_streams)

        async def scaled_up() -> bool:
            for task in streams:
                if task.done():  # a stream that ended early is a failed load, not a slow scale-up
                    raise AssertionError(f"a load stream ended: {task.result().error}")
            return (await api.get(dep_path))["spec"]["replicas"] == 2
        await until_async(local_cluster, api, namespace, scaled_up, what="the scale-up to 2", timeout=60)
        events = await api.list(resource_path("v1", "events", namespace=namespace))
        assert any(e.get("reason") == "SuccessfulRescale" and e["message"].startswith("New size: 2")
                   for e in events)


async def test_kubectl_scale_on_an_autoscaled_server_is_reported_and_overridden(
        local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> None:
    stt_path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace, name=NAME)
    dep_path = resource_path("apps/v1", "deployments", namespace=namespace, name=NAME)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(operator_for(local_cluster, namespace))
        api = await stack.enter_async_context(KubeApi(credentials_from_kubeconfig(local_cluster.kubeconfig)))
        local_cluster.apply([sttserver(namespace, tls_secret=None)], namespace=namespace)

        async def decided() -> bool:
            condition = scaling_active(await api.get(stt_path)) or {}
            return condition.get("reason") == "ValidMetricFound"
        await until_async(local_cluster, api, namespace, decided, what="the autoscaler's first decision", timeout=150)

        local_cluster.kubectl("scale", f"stt/{NAME}", "--replicas=2", "-n", namespace)

        async def warned() -> dict[str, Any] | None:
            events = await api.list(resource_path("v1", "events", namespace=namespace))
            return next((e for e in events if e.get("reason") == "ScaleOverridden"), None)
        event = await until_async(local_cluster, api, namespace, warned, what="a ScaleOverridden Event", timeout=30)
        assert event["type"] == "Warning" and event["involvedObject"]["name"] == NAME
        assert "spec.replicas=2" in event["message"] and "spec.autoscaling.enabled" in event["message"]
        condition = scaling_active(await api.get(stt_path))
        assert condition is not None and "spec.autoscaling.enabled" in condition["message"], condition

        # The autoscaler's count wins: idle, it keeps 1 over several passes (one a second), and says so once.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert (await api.get(dep_path))["spec"]["replicas"] == 1
            await asyncio.sleep(0.5)
        assert (await api.get(stt_path))["spec"]["replicas"] == 2
        events = await api.list(resource_path("v1", "events", namespace=namespace))
        assert sum(e.get("count") or 1 for e in events if e.get("reason") == "ScaleOverridden") == 1

"""Invalid specs become a readable Degraded condition; API server errors are reported and retried;
a restarted operator catches up; real write conflicts (a stale resourceVersion) are retried."""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

from local_cluster import LocalCluster, wait_until
from operator_cluster import Cluster, load_sample, unplaceable, wait_for
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi
from stt_operator.reconciler import Reconciler


async def test_invalid_spec_is_degraded_and_others_are_still_served(cluster: Cluster) -> None:
    bad = unplaceable(load_sample("minimal"), name="broken")
    # Admission lets any resource name through (a string map); parse_spec refuses GPUs asked for here.
    bad["spec"]["resources"]["requests"]["nvidia.com/gpu"] = "1"
    cluster.apply(bad)
    degraded = await cluster.wait_condition("broken", "Degraded", "True")
    assert degraded["reason"] == "InvalidSpec" and "use spec.gpu" in degraded["message"]
    await cluster.wait_for_event("broken", "Warning", "Degraded")
    assert await cluster.get("Deployment", "broken") is None

    good = unplaceable(load_sample("minimal"))
    cluster.apply(good)
    await cluster.wait_object("Deployment", good["metadata"]["name"], what="the valid one's Deployment")

    cluster.patch("SttServer", "broken", {"spec": {"resources": {"requests": {"nvidia.com/gpu": None}}}})
    await cluster.wait_condition("broken", "Degraded", "False")
    await cluster.wait_object("Deployment", "broken", what="children of the fixed SttServer")
    await cluster.wait_for_event("broken", "Normal", "Recovered")


@contextlib.contextmanager
def failing_service_creates(local: LocalCluster, namespace: str) -> Iterator[None]:
    """A validating webhook nobody serves, for Service creates in `namespace` only: with failurePolicy
    Fail the real API server answers those creates with 500 (InternalError) until it is removed."""
    name = f"stt-test-fail-services-{namespace}"[:63]
    local.kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{"name": "fail.services.sttfleet.io", "failurePolicy": "Fail", "sideEffects": "None",
                      "admissionReviewVersions": ["v1"], "timeoutSeconds": 1,
                      "clientConfig": {"url": "https://127.0.0.1:1/nobody-serves-this"},
                      "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["services"]}]}]}))
    try:
        def refused() -> bool:
            probe = local.kubectl("create", "service", "clusterip", "probe", "--tcp=80", "--dry-run=server",
                                  "-n", namespace, check=False)
            return "failed calling webhook" in probe.stderr
        wait_until(refused, what="the webhook to be in force", timeout=20)
        yield
    finally:
        local.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


async def test_server_errors_are_reported_then_retried_to_convergence(cluster: Cluster) -> None:
    sample = unplaceable(load_sample("minimal"))
    name = sample["metadata"]["name"]
    with failing_service_creates(cluster.local, cluster.namespace):
        cluster.apply(sample)
        degraded = await cluster.wait_condition(name, "Degraded", "True")
        assert degraded["reason"] == "ApplyFailed" and "500" in degraded["message"]
        assert "failed calling webhook" in degraded["message"]
        await cluster.wait_for_event(name, "Warning", "Degraded")
        assert await cluster.get("Service", name) is None
    await cluster.wait_object("Service", name, what="the Service once creates work again")
    await cluster.wait_condition(name, "Degraded", "False")
    await cluster.wait_for_event(name, "Normal", "Recovered")


async def test_a_restarted_operator_catches_up(cluster_api: Cluster, tmp_path: pathlib.Path) -> None:
    cluster = cluster_api
    sample = unplaceable(load_sample("minimal"))
    name = sample["metadata"]["name"]
    async with cluster.operator(tmp_path / "first.log"):
        cluster.apply(sample)
        await cluster.wait_object("Service", name)
        config = await cluster.wait_object("ConfigMap", name)
        await cluster.wait_condition(name, "Progressing", "True")

    # While no operator runs, a child is lost and the spec changes.
    cluster.delete("Service", name)
    cluster.patch("SttServer", name, {"spec": {"limits": {"maxSessions": 5}}})
    assert await cluster.get("Service", name) is None

    async with cluster.operator(tmp_path / "second.log"):
        await cluster.wait_object("Service", name, what="the Service, put back on resume")
        await cluster.wait_object("ConfigMap", name, lambda c: c["data"] != config["data"], what="the new config")

        async def observed() -> bool:
            return (await cluster.status(name)).get("observedGeneration") == 2
        await wait_for(observed, what="status.observedGeneration 2")


class InterleavingApi(KubeApi):
    """The operator's client, with someone else's write landing just before its first status write."""

    other_write: tuple[str, dict[str, Any]] | None = None
    status_answers: list[int]

    async def merge_patch(self, path: str, patch: Any) -> dict[str, Any]:
        if not path.endswith("/status"):
            return await super().merge_patch(path, patch)
        if self.other_write is not None:
            other_path, other_patch = self.other_write
            self.other_write = None
            await super().merge_patch(other_path, other_patch)
        try:
            written = await super().merge_patch(path, patch)
        except ApiError as exc:
            self.status_answers.append(exc.status)
            raise
        self.status_answers.append(200)
        return written


async def test_a_stale_status_write_conflicts_and_is_retried(cluster_api: Cluster) -> None:
    cluster = cluster_api
    sample = unplaceable(load_sample("minimal"))
    name = sample["metadata"]["name"]
    cluster.apply(sample)
    path = cluster.path("SttServer", name)
    async with InterleavingApi(cluster.api.credentials) as api:
        api.status_answers = []
        # A person labels the SttServer between the reconciler's read and its status write: the
        # write carries the resourceVersion it read, so the real API server answers 409.
        api.other_write = (path, {"metadata": {"labels": {"team": "speech"}}})
        await Reconciler(api).reconcile(cluster.namespace, name)
        assert api.status_answers == [409, 200]
    server = await cluster.get("SttServer", name)
    assert server is not None
    assert server["metadata"]["labels"]["team"] == "speech"
    assert server["status"]["observedGeneration"] == 1
    assert {c["type"] for c in server["status"]["conditions"]} == {"Ready", "Progressing", "Degraded", "ScalingActive"}
